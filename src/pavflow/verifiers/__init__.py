"""Verifiers. `value` holds orm/pqv/pav (one value-model mechanism, different targets); `implicit`
the implicit PRM (log-ratio of a trained policy copy to the base policy); `metrics` is numpy only.
Names below are imported lazily so `pavflow.verifiers.metrics` never pulls in torch."""

_VALUE = ("StateExample", "ValueVerifier", "encode_states", "load_value_model", "save_value_model",
          "score_states", "train_value", "value_model_from_policy")
_IMPLICIT = ("ImplicitVerifier", "ResponseExample", "ce_loss", "dpo_loss", "dpo_pairs",
             "implicit_models_from_policy", "implicit_rewards", "load_implicit", "save_implicit",
             "token_log_ratios", "train_implicit")
_METRICS = ("advantages", "auroc", "brier", "calibration_bins", "ece", "first_error", "first_error_f1",
            "fit_threshold", "predicted_first_error", "spearman")
__all__ = list(_VALUE + _IMPLICIT + _METRICS)


def __getattr__(name):
    if name in _VALUE:
        from pavflow.verifiers import value
        return getattr(value, name)
    if name in _IMPLICIT:
        from pavflow.verifiers import implicit
        return getattr(implicit, name)
    if name in _METRICS:
        from pavflow.verifiers import metrics
        return getattr(metrics, name)
    raise AttributeError(f"module 'pavflow.verifiers' has no attribute {name!r}")
