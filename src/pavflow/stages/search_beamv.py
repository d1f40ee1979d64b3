"""Stage `search_beamv`: step-level beam search at search.k_budget scored by one verifier's state value
alone (job.verifier, e.g. an implicit PRM: sigmoid(q_h), which ranks candidates as q_h does); the
answer is the pool's candidate with the highest value at its last state."""
from pavflow.search.beam import last_value
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import policy_sampler
from pavflow.stages.scoring import verifiers
from pavflow.stages.search_runs import run_beam, write_search
from pavflow.tasks import make_task


@stage_main("search_beamv")
def main(cfg, job, tracker) -> dict:
    s, name = cfg.search, job.wildcards["verifier"]
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    problems = load_problems(job.input.problems, [s.split])
    sampler = policy_sampler(cfg, job.input.policy, task)
    score = last_value(verifiers(cfg, job.input.verifier, job.input.policy)[name].score)
    res = run_beam(cfg, sampler, task, problems, budgets=[s.k_budget], step_score=score, final_score=score,
                   split=s.split, config={"method": "beam", "verifier": name, "prover": "", "k": 0, "alpha": 0.0})
    acc = write_search(res, job.output.search, tracker)
    return {f"beam_acc@{n}": a for n, a in zip(acc["budget"], acc["acc"])}


if __name__ == "__main__":
    main()
