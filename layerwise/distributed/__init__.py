"""layerwise.distributed"""
__all__: list[str] = []
