"""Online RL of the policy: policy gradient with a leave-one-out baseline, outcome or PAV-dense rewards (pg)."""
