"""layerwise.models"""
__all__: list[str] = []
