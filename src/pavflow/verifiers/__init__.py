"""Verifiers. `value` holds orm/pqv/pav (one value-model mechanism, different targets); `metrics`
is numpy only. Names below are imported lazily so `pavflow.verifiers.metrics` never pulls in torch."""

_VALUE = ("StateExample", "ValueVerifier", "encode_states", "load_value_model", "save_value_model",
          "score_states", "train_value", "value_model_from_policy")
_METRICS = ("advantages", "auroc", "brier", "calibration_bins", "ece", "first_error", "first_error_f1",
            "fit_threshold", "predicted_first_error", "spearman")
__all__ = list(_VALUE + _METRICS)


def __getattr__(name):
    if name in _VALUE:
        from pavflow.verifiers import value
        return getattr(value, name)
    if name in _METRICS:
        from pavflow.verifiers import metrics
        return getattr(metrics, name)
    raise AttributeError(f"module 'pavflow.verifiers' has no attribute {name!r}")
