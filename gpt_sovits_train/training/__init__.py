"""Training layer: the ``train(cfg)`` spine (instantiate, fit, resume, signals); imports callbacks, lit, interchange,
models and the bottom layers."""
