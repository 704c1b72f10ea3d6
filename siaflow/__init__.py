"""siaflow: how a language model's uncertainty about its final answer evolves while it reasons."""

__version__ = "0.1.0"
