"""rakijax: GRAPPA and complex RAKI in JAX with exact image-space form and g-factor maps."""

__version__ = "0.1.0"
