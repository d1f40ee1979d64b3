"""Online RL of the policy: policy gradient with a leave-one-out baseline, outcome or PAV-dense rewards."""
from pavflow.rl.pg import (RLConfig, loo_advantages, pg_loss, sequence_logprobs, step_of_token,
                           token_advantages, train_rl)

__all__ = ["RLConfig", "loo_advantages", "pg_loss", "sequence_logprobs", "step_of_token",
           "token_advantages", "train_rl"]
