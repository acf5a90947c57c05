"""layerwise.functional"""
__all__: list[str] = []
