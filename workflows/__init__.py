"""CheckoutSaga and its deterministic helpers."""
