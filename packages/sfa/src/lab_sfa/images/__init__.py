"""Image task sequences: offline datasets, transforms, small CNN / ResNet models and sequence builders."""
