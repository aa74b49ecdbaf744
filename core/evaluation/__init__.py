"""Layer 5: scoring and sampling trained models (GAN metrics, samples, GAN prior, novelty)."""
