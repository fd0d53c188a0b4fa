"""robust_core: zero-shot heads, fine-tuning (FT, LP, LP-FT, FLYP), WiSE-FT and alpha-grid logit stores."""

__version__ = "0.1.0"
