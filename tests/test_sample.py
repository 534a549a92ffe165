import math

import pytest
import torch

from model import GPT, GPTConfig
import sample
from sample import draw, filter_logits, generate, sample_next_token
from tasks import prompt_text
from tokenizer import Tokenizer

EOS, PAD = 11, 12
PROMPTS = [[1, 2, 3, 4, 5, 6, 7], [8, 9], [3, 1, 4, 1, 5], [2], [7, 7, 7, 7]]


def tiny_model(pos="rope", seed=0):
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=13, n_layer=2, n_head=2, n_kv_head=1, n_embd=32, n_inner=64, max_seq_len=64,
                    norm="rmsnorm", pos=pos, mlp="swiglu", bias=False, tie_embeddings=False)
    model = GPT(cfg).eval()
    with torch.no_grad():  # sharper logits than the 0.02-std init, so greedy paths and EOS stops vary
        model.lm_head.weight.mul_(8.0)
    return model


def test_greedy_batched_equals_one_prompt_at_a_time():
    model = tiny_model()
    batched = generate(model, PROMPTS, 24, temperature=0, eos_id=EOS, pad_id=PAD)
    for prompt, got in zip(PROMPTS, batched):
        alone = generate(model, [prompt], 24, temperature=0, eos_id=EOS, pad_id=PAD)[0]
        assert got.tokens == alone.tokens
        assert got.finish_reason == alone.finish_reason
    assert {c.finish_reason for c in batched} == {"eos", "length"}  # both kinds of stop were exercised


def full_forward_logprobs(model, prompt, response, temperature):
    idx = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(idx)[0, len(prompt) - 1 : -1]  # logits at t score token t + 1
    return (logits / temperature).log_softmax(-1).gather(-1, torch.tensor(response)[:, None]).squeeze(-1)


@pytest.mark.parametrize("temperature", [0.6, 1.0])
def test_logprobs_match_one_full_forward(temperature):
    model = tiny_model()
    completions = generate(model, PROMPTS * 4, 30, temperature=temperature, eos_id=EOS, pad_id=PAD, seed=3)
    lengths = {len(c) for c in completions}
    assert len(lengths) > 3  # rows stop at different times, so the cache compaction ran
    for prompt, c in zip(PROMPTS * 4, completions):
        want = full_forward_logprobs(model, prompt, c.tokens, temperature)
        assert (torch.tensor(c.logprobs) - want).abs().max().item() < 1e-5


def test_same_seed_same_samples_other_seed_differs():
    model = tiny_model()
    run = lambda seed: [c.tokens for c in generate(model, PROMPTS, 20, temperature=1.0, eos_id=EOS,
                                                   pad_id=PAD, seed=seed)]
    assert run(5) == run(5)
    assert run(5) != run(6)


def test_each_row_stops_at_its_own_eos():
    model = tiny_model()
    completions = generate(model, PROMPTS * 8, 10, temperature=1.0, eos_id=EOS, pad_id=PAD, seed=0)
    assert sum(c.finish_reason == "eos" for c in completions) == 27  # and 13 rows cut off: both kinds are checked
    for c in completions:
        assert EOS not in c.tokens[:-1]  # nothing after the first EOS belongs to the response
        if c.finish_reason == "eos":
            assert c.tokens[-1] == EOS
        else:
            assert len(c) == 10
        assert len(c.logprobs) == len(c)


def test_a_rows_sample_does_not_depend_on_the_batch_around_it():
    # Row r draws from the random stream (seed, r): chunking, other rows and their stops change nothing.
    model = tiny_model()
    kw = dict(temperature=1.0, eos_id=EOS, pad_id=PAD, seed=4)
    whole = generate(model, PROMPTS * 3, 16, batch_size=64, **kw)
    assert [c.tokens for c in generate(model, PROMPTS * 3, 16, batch_size=2, **kw)] == [c.tokens for c in whole]
    alone = generate(model, [PROMPTS[2]], 16, row_ids=[7], **kw)[0]  # row 7 of the batch, sampled by itself
    assert alone.tokens == whole[7].tokens
    assert len({len(c) for c in whole}) > 2  # rows stopped at different steps, so compaction ran


def test_learned_positions_model_works_and_rejects_overlong_requests():
    model = tiny_model(pos="learned")
    greedy = generate(model, PROMPTS, 10, temperature=0, eos_id=EOS, pad_id=PAD)
    for prompt, got in zip(PROMPTS, greedy):
        assert got.tokens == generate(model, [prompt], 10, temperature=0, eos_id=EOS, pad_id=PAD)[0].tokens
    with pytest.raises(ValueError, match="exceeds the model's context of 64"):
        generate(model, PROMPTS, 60, eos_id=EOS)
    for bad in (-0.5, 1e-40, math.inf, math.nan):  # 1e-40 sampled token 0 with NaN log-probs
        with pytest.raises(ValueError, match=r"temperature must be 0 \(greedy\) or in \[0.001, inf\)"):
            generate(model, PROMPTS, 5, temperature=bad, eos_id=EOS)


def test_filter_logits_hand_computed():
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.15), math.log(0.05)]])
    assert torch.equal(filter_logits(logits), logits)  # top_p = 1, no top_k: untouched
    kept = lambda x: torch.isfinite(x)[0].tolist()
    # Mass ranked above each token: 0, .5, .8, .95 -> with top_p = .8 the third token is dropped.
    assert kept(filter_logits(logits, top_p=0.8)) == [True, True, False, False]
    assert kept(filter_logits(logits, top_p=0.81)) == [True, True, True, False]
    # The boundary itself, where float32 holds it exactly (.8 above is .80000007): a mass above of exactly
    # top_p drops the token.
    halves = torch.tensor([[0.5, 0.25, 0.125, 0.125]]).log()  # mass above: 0, .5, .75, .875, all exact
    assert kept(filter_logits(halves, top_p=0.75)) == [True, True, False, False]
    assert kept(filter_logits(logits, top_k=2)) == [True, True, False, False]
    shuffled = logits[:, [2, 0, 3, 1]]  # order must not matter
    assert kept(filter_logits(shuffled, top_p=0.8)) == [False, True, False, True]


def test_top_p_of_one_keeps_a_token_whose_mass_rounds_away():
    """top_p = 1 is off: it keeps a token of probability 2e-9, whose mass above (1 - 2e-9) is 1.0 in float32."""
    logits = torch.tensor([[0.0, -20.0]])
    assert (logits.softmax(-1).cumsum(-1) - logits.softmax(-1))[0, 1].item() == 1.0  # the rounding itself
    assert torch.equal(filter_logits(logits, top_p=1.0), logits)


def test_tiny_top_p_is_greedy_and_logprob_is_unfiltered():
    model = tiny_model()
    greedy = generate(model, PROMPTS, 12, temperature=0, eos_id=EOS, pad_id=PAD)
    nucleus = generate(model, PROMPTS, 12, temperature=1.0, top_p=1e-6, eos_id=EOS, pad_id=PAD, seed=1)
    assert [c.tokens for c in nucleus] == [c.tokens for c in greedy]
    # The log-prob reported is that of the unfiltered distribution, i.e. not 0 although p(filtered) = 1.
    assert all(lp < 0 for c in nucleus for lp in c.logprobs)


def test_sample_next_token_greedy_and_temperature():
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    token, logp = sample_next_token(logits, temperature=0)
    assert token.item() == 1
    assert logp.item() == pytest.approx(torch.log_softmax(logits, -1)[0, 1].item())
    u = torch.rand(4000, generator=torch.Generator().manual_seed(0))
    draws = sample_next_token(logits.expand(4000, 3), temperature=0.5, u=u)[0]
    freq = torch.bincount(draws, minlength=3).float() / 4000
    want = torch.softmax(logits / 0.5, -1)[0]
    assert (freq - want).abs().max().item() < 0.03


def test_draw_frequencies_and_zero_weights_never_drawn():
    g = torch.Generator().manual_seed(0)
    weights = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).expand(20000, 4)
    freq = torch.bincount(draw(weights, torch.rand(20000, generator=g)), minlength=4).float() / 20000
    assert freq[1] == 0
    assert (freq - torch.tensor([0.1, 0.0, 0.6, 0.3])).abs().max() < 0.015
    edge = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])  # unnormalised is fine
    assert draw(edge.repeat(100, 1), torch.rand(300, generator=g)).view(100, 3).eq(torch.tensor([2, 0, 1])).all()
    # Inverse CDF by hand: cumulative weights [0.1, 0.1, 0.7, 1.0]; u = 0.05 -> 0, 0.1 -> 2 (the empty slot
    # of token 1 is skipped), 0.69 -> 2, 0.71 -> 3, 0.999 -> 3.
    assert draw(weights[:5], torch.tensor([0.05, 0.1, 0.69, 0.71, 0.999])).tolist() == [0, 2, 2, 3, 3]
    # Weights of any total (what top-p leaves): [2, 6] has slots [0, 2) and [2, 8) of u * 8
    assert draw(torch.tensor([[2.0, 6.0]] * 3), torch.tensor([0.2, 0.26, 0.5])).tolist() == [0, 1, 1]


def test_draw_never_takes_a_zero_weight_slot_left_by_rounding(monkeypatch):
    # A GPU's tree-shaped cumsum can put the entry after a zero weight one rounding unit above the entry
    # before it. Here token 1 (weight 0) gets such a slot, [0.25, 0.25 + 1 ulp): a draw landing in it must
    # take a token of positive weight, the heaviest (token 2), not token 1.
    weights = torch.tensor([[0.25, 0.0, 0.5, 0.25]])
    true_cumsum = torch.Tensor.cumsum

    def tree_cumsum(self, dim):
        cdf = true_cumsum(self, dim)
        cdf[:, 1] = torch.nextafter(cdf[:, 0], torch.tensor(2.0))
        return cdf

    monkeypatch.setattr(torch.Tensor, "cumsum", tree_cumsum)
    assert weights.cumsum(-1)[0, 1] > weights.cumsum(-1)[0, 0]  # the slot is there
    u = torch.tensor([0.25, 0.1, 0.3, 0.8])  # 0.25 * total 1.0 lands in token 1's slot
    assert draw(weights.expand(4, 4), u).tolist() == [2, 0, 2, 3]


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_sampling_under_bf16_autocast_uses_a_bf16_cache(pos):
    model = tiny_model(pos=pos)  # fp32 weights: RoPE's fp32 tables turn bf16 keys back into fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.new_cache(2, 8).k.dtype == torch.bfloat16
        runs = {engine: generate(model, PROMPTS, 10, temperature=1.0, eos_id=EOS, pad_id=PAD, seed=0, engine=engine)
                for engine in ("eager", "graph")}
    for completions in runs.values():
        assert all(len(c.logprobs) == len(c) and all(math.isfinite(x) and x <= 0 for x in c.logprobs)
                   for c in completions)
    assert [c.tokens for c in runs["graph"]] == [c.tokens for c in runs["eager"]]


def test_generate_rejects_bad_arguments_and_restores_training_mode(monkeypatch):
    model = tiny_model().train()
    bad = [(dict(max_new_tokens=0), "max_new_tokens must be at least 1"),
           (dict(top_k=0), r"top_k \(0\) must be at least 1"), (dict(top_p=0.0), r"top_p \(0.0\) in \(0, 1\]"),
           (dict(engine="fast"), "unknown engine 'fast'"), (dict(row_ids=[0, 1]), "2 row_ids for 5 prompts"),
           (dict(engine="graph", stream=print), "stream needs the eager engine")]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            generate(model, PROMPTS, **{"max_new_tokens": 4, **kwargs})
    def fail(*args):
        raise RuntimeError("out of memory")
    monkeypatch.setattr(sample, "_generate_eager", fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        generate(model, PROMPTS, 4)
    assert model.training  # as the caller left it, even though sampling failed


def test_generate_refuses_an_empty_prompt_and_takes_a_request_that_fills_the_context_exactly():
    model = tiny_model()  # max_seq_len 64
    with pytest.raises(ValueError, match="every prompt needs at least one token"):
        generate(model, [[1, 2], []], 4, eos_id=EOS)
    done = generate(model, [PROMPTS[0]], 64 - len(PROMPTS[0]), temperature=0, pad_id=PAD)  # 7 + 57 = 64, no EOS
    assert len(done[0]) == 57 and done[0].finish_reason == "length"


def test_the_eager_engine_compacts_once_a_quarter_of_its_rows_are_done(monkeypatch):
    model = tiny_model()
    batches = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda idx, **kw: (batches.append(len(idx)), forward(idx, **kw))[1])
    completions = generate(model, PROMPTS * 4, 30, temperature=1.0, eos_id=EOS, pad_id=PAD, seed=7, engine="eager")
    # the rule replayed from where each row stopped: after step t, drop the finished rows from the cache once
    # they are at least a quarter of it
    ended = [len(c) if c.finish_reason == "eos" else 99 for c in completions]
    cache, want = list(range(20)), []
    for t in range(30):
        done = [r for r in cache if ended[r] <= t + 1]
        if len(done) == len(cache):
            break
        if len(done) * 4 >= len(cache):
            cache = [r for r in cache if ended[r] > t + 1]
        want.append(len(cache))
    assert batches[0] == 20 and batches[1:] == want  # the prefill, then one decode call per step
    assert len(set(want)) >= 3  # it compacted at least twice


def test_the_cli_refuses_flags_that_contradict_each_other_or_the_context(capsys):
    base = ["--ckpt", "checkpoints/toy-base", "--prompt", "(3+4)*5"]
    for flags, message in [(["--temperature", "0", "--num-samples", "2"], "--temperature 0 is greedy: its 2 samples"),
                           (["--key", "question"], "--key picks the field of --prompts records")]:
        with pytest.raises(SystemExit) as e:
            sample.main(base + flags)
        assert e.value.code == 2 and message in capsys.readouterr().err
    tok = Tokenizer.load("checkpoints/toy-base")
    context = GPT.from_pretrained("checkpoints/toy-base").config.max_seq_len
    room = context - len(tok.encode(prompt_text("(3+4)*5", tok)))
    with pytest.raises(SystemExit) as e:  # one token past the context: refused in one line, before sampling
        sample.main(base + ["--max-new-tokens", str(room + 1)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert f"plus --max-new-tokens {room + 1} does not fit the model's context of {context} tokens" in err
    sample.main(base + ["--temperature", "0", "--max-new-tokens", str(room)])  # exactly the context: taken
    assert capsys.readouterr().out.strip().endswith("\\boxed{35}")


def test_the_cli_prints_one_completion_with_every_sampler(capsys):
    printed = []
    for sampler in ("eager", "graph"):  # eager streams the text token by token; graph prints it at the end
        sample.main(["--ckpt", "checkpoints/toy-base", "--prompt", "(3+4)*5", "--temperature", "0", "--sampler", sampler])
        printed.append(capsys.readouterr().out.strip())
    assert printed[0] == printed[1] and printed[0].endswith("\\boxed{35}")
    sample.main(["--ckpt", "checkpoints/toy-base", "--prompt", "(3+4)*5", "--temperature", "0", "--show-prompt"])
    tok = Tokenizer.load("checkpoints/toy-base")
    ids = tok.encode(prompt_text("(3+4)*5", tok))
    assert capsys.readouterr().out.strip() == f"--- prompt ({len(ids)} tokens)\n{tok.decode(ids)}\n--- response\n" \
        + printed[0]


# ---------------------------------------------------------------------------------------------------
# The graph engine: a static cache and fixed-shape steps (captured as CUDA graphs on a GPU; on a CPU the
# same steps run uncaptured, which is what these tests check against the eager engine).


@pytest.fixture
def small_buckets(monkeypatch):
    """Buckets small enough that a 30-token run crosses several widths and compacts its batch often."""
    monkeypatch.setattr(sample, "WIDTH_BUCKET", 8)
    monkeypatch.setattr(sample, "SYNC_EVERY", 1)


@pytest.mark.parametrize("pos", ["rope", "learned"])
@pytest.mark.parametrize("buckets", ["default", "small"])
def test_graph_engine_greedy_tokens_equal_the_eager_engine(pos, buckets, request):
    if buckets == "small":
        request.getfixturevalue("small_buckets")
    model = tiny_model(pos=pos)
    eager = generate(model, PROMPTS * 5, 30, temperature=0, eos_id=EOS, pad_id=PAD, engine="eager")
    graph = generate(model, PROMPTS * 5, 30, temperature=0, eos_id=EOS, pad_id=PAD, engine="graph")
    assert [c.tokens for c in graph] == [c.tokens for c in eager]
    assert [c.finish_reason for c in graph] == [c.finish_reason for c in eager]
    assert "eos" in {c.finish_reason for c in eager} and len({len(c) for c in eager}) >= 2


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.6, 1.0), (1.0, 0.9)])
def test_graph_engine_samples_what_the_eager_engine_samples(small_buckets, temperature, top_p):
    model = tiny_model()
    kw = dict(temperature=temperature, top_p=top_p, eos_id=EOS, pad_id=PAD, seed=7)
    eager = generate(model, PROMPTS * 6, 30, engine="eager", **kw)
    graph = generate(model, PROMPTS * 6, 30, engine="graph", **kw)
    assert [c.tokens for c in graph] == [c.tokens for c in eager]  # same noise, same distribution
    worst = max(abs(a - b) for ce, cg in zip(eager, graph) for a, b in zip(ce.logprobs, cg.logprobs))
    assert worst < 1e-4
    assert graph == generate(model, PROMPTS * 6, 30, engine="graph", **kw)  # same seed, same samples
    assert len({len(c) for c in graph}) > 3  # rows stopped at many different steps


def test_graph_engine_compacts_finished_rows_into_smaller_buckets(small_buckets, monkeypatch):
    model = tiny_model()
    batches = []
    step = model.decode_step
    monkeypatch.setattr(model, "decode_step", lambda token, *args: (batches.append(len(token)), step(token, *args))[1])
    completions = generate(model, PROMPTS * 6, 30, temperature=1.0, eos_id=EOS, pad_id=PAD, seed=7, engine="graph")
    live = [sum(len(c) > s for c in completions) for s in range(1, 30)]  # rows still running before step s
    # each step runs the bucket of the rows live before it: one look at the rows per step (SYNC_EVERY = 1)
    assert batches == [sample.batch_bucket(n) for n in live if n > 0]
    assert batches[0] == 32 and len(set(batches)) >= 4


def test_graph_engine_logprobs_match_one_full_forward(small_buckets):
    model = tiny_model()
    completions = generate(model, PROMPTS * 4, 30, temperature=0.6, eos_id=EOS, pad_id=PAD, seed=3, engine="graph")
    for prompt, c in zip(PROMPTS * 4, completions):
        want = full_forward_logprobs(model, prompt, c.tokens, 0.6)
        assert (torch.tensor(c.logprobs) - want).abs().max().item() < 1e-5


def test_graph_engine_uses_the_models_rope_theta(small_buckets):
    # Qwen2's rope_theta is 1e6, not the default 1e4: the decode steps' rope tables must take it as the prefill does
    model = tiny_model()
    model.config.rope_theta = 1e6
    completions = generate(model, PROMPTS * 2, 30, temperature=0.6, eos_id=EOS, pad_id=PAD, seed=3, engine="graph")
    for prompt, c in zip(PROMPTS * 2, completions):
        want = full_forward_logprobs(model, prompt, c.tokens, 0.6)
        assert (torch.tensor(c.logprobs) - want).abs().max().item() < 1e-5


def test_graph_engine_without_eos_runs_every_row_to_the_cap():
    model = tiny_model()
    completions = generate(model, PROMPTS, 20, temperature=1.0, eos_id=None, pad_id=PAD, engine="graph")
    assert all(len(c) == 20 and c.finish_reason == "length" for c in completions)


@pytest.mark.parametrize("engine", ["eager", "graph"])
def test_any_of_several_eos_ids_ends_a_response(engine, small_buckets):
    """generation_config.json may list several EOS ids (Qwen2.5-Instruct: <|im_end|>, <|endoftext|>)."""
    model = tiny_model()
    free = generate(model, PROMPTS * 4, 30, temperature=1.0, eos_id=None, pad_id=PAD, seed=5, engine=engine)
    both = generate(model, PROMPTS * 4, 30, temperature=1.0, eos_id=[EOS, 3], pad_id=PAD, seed=5, engine=engine)
    for f, c in zip(free, both):
        ends = [t for t, token in enumerate(f.tokens) if token in (EOS, 3)]
        k = ends[0] + 1 if ends else 30
        assert (c.tokens, c.finish_reason) == (f.tokens[:k], "eos" if ends else "length")
        assert c.logprobs == pytest.approx(f.logprobs[:k], abs=1e-5)  # other rows beside it: rounding only
    last = {c.tokens[-1] for c in both if c.finish_reason == "eos"}
    assert last == {EOS, 3}  # each id ended some response
    assert [c.tokens for c in generate(model, PROMPTS * 4, 30, temperature=1.0, eos_id=(EOS,), pad_id=PAD, seed=5,
                                       engine=engine)] == \
        [c.tokens for c in generate(model, PROMPTS * 4, 30, temperature=1.0, eos_id=EOS, pad_id=PAD, seed=5,
                                    engine=engine)]


def test_a_copy_of_a_model_gets_its_own_compiled_step(monkeypatch):
    import copy
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: lambda *args: fn(*args))  # a wrapper, as torch.compile's
    model = tiny_model()
    generate(model, PROMPTS, 10, temperature=0, engine="compiled")  # compiles (here: wraps) model's step
    twin = copy.deepcopy(model)  # carries model's attributes along, the compiled step among them
    with torch.no_grad():
        twin.lm_head.weight.neg_()
    want = [c.tokens for c in generate(twin, PROMPTS, 10, temperature=0, engine="eager")]
    assert [c.tokens for c in generate(twin, PROMPTS, 10, temperature=0, engine="compiled")] == want
    assert want != [c.tokens for c in generate(model, PROMPTS, 10, temperature=0, engine="eager")]


@pytest.mark.slow
def test_compiled_engine_samples_what_the_eager_engine_samples_and_compiles_twice(monkeypatch):
    # torch.compile of the decode step (inductor's C++ backend here, Triton on a GPU): about a minute.
    monkeypatch.setattr(sample, "WIDTH_BUCKET", 16)  # 7 + 30 tokens: widths 16, 32 and 48
    monkeypatch.setattr(sample, "SYNC_EVERY", 1)  # compact as soon as rows stop: batches 32, 16, ..., 1
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = tiny_model()
    kw = dict(temperature=1.0, eos_id=EOS, pad_id=PAD, seed=3)
    eager = generate(model, PROMPTS * 5, 30, engine="eager", **kw)
    compiled = generate(model, PROMPTS * 5, 30, engine="compiled", **kw)
    assert [c.tokens for c in compiled] == [c.tokens for c in eager]
    assert len({len(c) for c in compiled}) > 3  # rows stopped at many steps, so the batch shrank many times
    assert generate(model, PROMPTS[:1], 30, engine="compiled", **kw)[0].tokens == eager[0].tokens
    # one compiled step serves every width and every batch above 1; a batch of 1 is compiled on its own
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2


def test_prompts_files_are_read_by_problem_question_or_prompt(tmp_path):
    """GSM8K's records say "question", which every other script reads and sample.py refused."""
    from common import InputError
    from sample import read_prompts
    path = tmp_path / "p.jsonl"
    path.write_text('{"question": "q1", "prompt": "p1"}\n{"prompt": "p2"}\n{"problem": "x", "question": "q3"}\n')
    assert read_prompts(str(path), None) == ["q1", "p2", "x"]
    path.write_text('{"text": "t"}\n')
    with pytest.raises(InputError, match=r"p.jsonl:1: expected a JSON object with a text 'problem, question or "
                                         r"prompt' field; --key names another"):
        read_prompts(str(path), None)
    assert read_prompts(str(path), "text") == ["t"]
