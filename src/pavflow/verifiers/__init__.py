"""Verifiers. `value` holds orm/pqv/pav (one value-model mechanism, different targets); `implicit` the
implicit PRM (log-ratio of a trained policy copy to the base policy); `analytic` the pav implied by the
pqv; `targets` and `selection` their training labels; `metrics` and `quality` how good they are."""
