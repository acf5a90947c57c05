"""layerwise.train"""
__all__: list[str] = []
