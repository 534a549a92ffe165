"""
A trained model as a Hugging Face folder, for the tools that read those (transformers, vLLM, lm-eval):

    python export_hf.py --ckpt runs/phase2/checkpoint/actor --out exports/phase2

train_rl.py saves its models in this project's format: a config.json of GPTConfig fields and fp32 weights under
our names. This writes the same model as the Hugging Face architecture of its shape (qwen2 or llama for a model
that came from such a folder, gpt2 for GPT-2's): config.json, model.safetensors under that architecture's names in
--dtype (default bf16, the dtype R1-Distill ships in and vLLM serves), and the tokenizer and generation_config.json
files the checkpoint kept from the folder it started from, unchanged. It then reads the folder back through this
project's loader and checks every tensor against the checkpoint's, rounded to --dtype; a folder that fails the
check loses its config.json, so that no tool loads it as a model.
"""

import os
import time

import torch

from common import (SAFETENSORS_TEMP, InputError, Parser, check_out_folder, cli, remove_names, run_holding,
                    save_safetensors, write_json)
from model import CheckpointError, hf_config, hf_model_type, hf_tensors, read_checkpoint
from runs import size_text
from sample import DTYPES
from tokenizer import BYTES_FILE, HF_FILES, Tokenizer

WEIGHTS = "model.safetensors"
# what an export writes into --out; the safetensors library writes the weights through a .tmpXXXXXX file there,
# which a kill (or the OOM killer) mid-save leaves behind, and --overwrite then replaces
OWNED = dict.fromkeys(["config.json", WEIGHTS, *HF_FILES, SAFETENSORS_TEMP])


@cli
def main(argv=None):
    p = Parser(description="Write a project checkpoint as a Hugging Face folder (transformers, vLLM, lm-eval).")
    p.add_argument("--ckpt", required=True, help="the model to export: a run's checkpoint/actor, or any project "
                   "checkpoint whose tokenizer came from a Hugging Face folder")
    p.add_argument("--out", required=True, help="the folder to write (missing or empty, else --overwrite)")
    p.add_argument("--dtype", choices=DTYPES, default="bf16", help="dtype of the exported weights (default: bf16; "
                   "fp32 keeps a trained actor's weights exactly)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    args = p.parse_args(argv)

    config, tensors = read_checkpoint(args.ckpt)  # refuses a critic, a run folder, a damaged checkpoint
    if os.path.isdir(args.out) and os.path.samefile(args.out, args.ckpt):
        raise InputError(f"--out {args.out} is the checkpoint itself, which the export would replace; give another "
                         "folder")
    if run := run_holding(args.out):
        raise InputError(f"--out {args.out} is inside the run folder {run}: its next save would delete "
                         "an export in its checkpoint, and --resume refuses files the run did not write; give a folder "
                         "outside it")
    if os.path.islink(args.out) and not os.path.exists(args.out):
        raise InputError(f"--out {args.out} is a link to {os.readlink(args.out)}, which does not exist; make that folder "
                         "or give another --out")
    if os.path.isfile(os.path.join(args.ckpt, BYTES_FILE)):
        raise InputError(f"{args.ckpt} has the toy's byte-level tokenizer ({BYTES_FILE}), which no Hugging Face "
                         "tokenizer file describes; export a model trained from a Hugging Face folder")
    model_type = hf_model_type(config)
    if model_type is None:
        raise InputError(f"{args.ckpt}: no Hugging Face architecture has this model's shape (norm {config.norm}, "
                         f"positions {config.pos}, MLP {config.mlp}, q/k/v bias {config.qkv_bias}, other biases "
                         f"{config.bias}, head_dim {config.head_dim}); export supports gpt2, qwen2 and llama shapes")
    tok = Tokenizer.load(args.ckpt)
    earlier = check_out_folder(args.out, OWNED, overwrite=args.overwrite, what="Hugging Face export",
                               fix="pick an empty or new --out, or replace that export with --overwrite")

    t0, dtype = time.perf_counter(), DTYPES[args.dtype]
    print(f"reading {args.ckpt} ({model_type}, {config.n_layer} layers) into {args.dtype}", flush=True)
    ours = {name: t.to(dtype) for name, t in tensors}
    overflow = [name for name, t in ours.items() if not torch.isfinite(t).all()]
    if overflow:
        raise InputError(f"{args.ckpt}: {overflow[:3]} hold values that are not finite in {args.dtype} (past its range, "
                         "or already inf/NaN in the checkpoint); export in bf16 or fp32")
    print(f"writing {args.out}", flush=True)
    remove_names(args.out, sorted(earlier, key=lambda name: name != "config.json"))  # config.json first: no half model
    save_safetensors(hf_tensors(config, ours.items()), os.path.join(args.out, WEIGHTS))
    tok.save(args.out)  # the tokenizer and generation files verbatim, as the checkpoint kept them
    write_json(hf_config(config, dtype, tok.bos_id, tok.eos_id), os.path.join(args.out, "config.json"))  # last

    print(f"reading {args.out} back", flush=True)
    try:  # the export through this project's own loader, a tensor at a time
        again, back = read_checkpoint(args.out)
        seen, differ = set(), []
        for name, t in back:
            seen.add(name)
            if name not in ours or not torch.equal(t, ours[name]):
                differ.append(name)
        differ += sorted(set(ours) - seen)
        if again != config or differ:
            what = ("its config differs; " if again != config else "") + f"tensors differ or are missing: {differ[:5]}"
            raise CheckpointError(f"{args.out} does not read back as {args.ckpt} ({what}): a bug in model.hf_tensors; "
                                  "its config.json is removed, so that no tool loads the wrong model")
    except BaseException:  # a refused (or interrupted) check leaves no loadable folder behind
        if os.path.isfile(os.path.join(args.out, "config.json")):
            os.remove(os.path.join(args.out, "config.json"))
        raise
    params, size = sum(t.numel() for t in ours.values()), os.path.getsize(os.path.join(args.out, WEIGHTS))
    print(f"wrote {args.out}: {model_type}, {args.dtype}, {params / 1e6:.1f}M parameters, {size_text(size)}, "
          f"in {time.perf_counter() - t0:.0f} s; it reads back as {args.ckpt} to the last bit in {args.dtype}")


if __name__ == "__main__":
    main()
