"""w2s core: recipes, planning, data, models, training, store and analysis. Never imports a UI."""

__version__ = "0.1.0"
