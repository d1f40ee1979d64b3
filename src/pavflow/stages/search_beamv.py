"""Stage `search_beamv`: step-level beam search at search.k_budget scored by one verifier's state value
alone (job.verifier, e.g. an implicit PRM: sigmoid(q_h), which ranks candidates as q_h does); the
answer is the pool's candidate with the highest value at its last state."""
from pavflow.search.beam import last_value
from pavflow.stages.common import load_problems, load_verifier, policy_sampler, stage_main
from pavflow.stages.search_runs import run_beam, write_search
from pavflow.tasks import make_task


@stage_main("search", lambda cfg: f"search-beamv-{cfg.job.verifier}", lambda cfg: [f"verifier:{cfg.job.verifier}"])
def main(cfg, layout, tracker) -> dict:
    s, name = cfg.search, cfg.job.verifier
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    problems = load_problems(layout, [s.split])
    sampler = policy_sampler(cfg, layout, cfg.sweep.policy, task)
    score = last_value(load_verifier(cfg, layout, name).score)
    res = run_beam(cfg, sampler, task, problems, budgets=[s.k_budget], step_score=score, final_score=score,
                   split=s.split, config={"method": "beam", "verifier": name, "prover": "", "k": 0, "alpha": 0.0})
    acc = write_search(cfg, layout, tracker, res, f"beamv_{name}")
    return {f"beam_acc@{n}": a for n, a in zip(acc["budget"], acc["acc"])}


if __name__ == "__main__":
    main()
