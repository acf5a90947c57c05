"""layerwise.objectives"""
__all__: list[str] = []
