"""
Several processes with torch.distributed: `torchrun --nproc_per_node N train_rl.py <flags>` (eval.py and
select_problems.py too). Under plain `python` there is one process and every function here is a no-op.

How train_rl.py splits a step, so that the result does not depend on N:
- sampling: each process samples every N-th row of the step from a full-weight rollout copy of the actor;
  a row draws from its own random stream (sample.row_uniforms), so it is the same row whatever N is;
- the rollout (tokens, scores) is gathered on every process, so advantages, whitening and the logged
  figures are computed over the whole batch everywhere, exactly as in one process;
- forward and backward passes: each process takes every N-th micro-batch; actor, critic and reference are
  sharded with FSDP2 (`fully_shard` per block), which gathers a block's weights for its forward (in fp32;
  bf16 runs cast them under autocast, as one process does) and reduce-scatters its gradients. FSDP
  averages gradients over processes and our losses are already sums over the global batch, so each
  process scales its loss by N;
- checkpoints: gathered into full tensors and written once, by process 0, in the one-process format, so
  eval.py, sample.py and --resume read them with any N.
NCCL on a GPU machine, each process on its own GPU; gloo on CPUs (which is how the tests run two processes).
A non-finite loss on any process skips that optimiser step on every process (train_rl.optimizer_step).
"""

import os
import sys
import traceback

import torch
import torch.distributed as dist

from common import InputError


def setup():
    """Join torchrun's process group (environment variables RANK, WORLD_SIZE, ...); nothing without torchrun."""
    if "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # "cuda" now means this process's GPU
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def check_device(name):
    """Refuse a --device that torchrun's processes cannot use. On a GPU machine they talk over NCCL, which
    moves GPU tensors only, and each computes on its own GPU (cuda:LOCAL_RANK, set by setup())."""
    if world() == 1:
        return
    where = torch.device(name)
    if where.type == "cpu" and dist.get_backend() == "nccl":
        raise InputError("--device cpu under torchrun on a GPU machine: the processes talk over NCCL, which moves GPU "
                         "tensors only; hide the GPUs (CUDA_VISIBLE_DEVICES= torchrun ...) to run on CPUs")
    if where.type == "cuda" and where.index is not None:  # refused on every process alike, even where it is right
        raise InputError(f"--device {name} under torchrun: each process takes its own GPU (cuda:LOCAL_RANK); "
                         "give --device cuda")


def rank():
    """This process's rank: the group's, or under torchrun (which sets RANK and WORLD_SIZE) its RANK once
    leave() has left the group: process 1 must not go on to write what process 0 writes."""
    if dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0)) if "WORLD_SIZE" in os.environ else 0


def world():
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main():
    return rank() == 0


def my_share(items):
    """Every N-th item, from this process's rank, padded with None to the same count on every process:
    FSDP's collectives need each process to make the same number of forward and backward calls."""
    items = list(items)
    mine = items[rank() :: world()]
    return mine + [None] * (-(-len(items) // world()) - len(mine))


def gather(pieces):
    """{index: item} of every process, merged (every process gets all of it)."""
    if world() == 1:
        return dict(pieces)
    parts = [None] * world()
    dist.all_gather_object(parts, pieces)
    return {k: v for part in parts for k, v in part.items()}


def comm_device():
    """Where a collective's tensors must be: this process's GPU under NCCL (it reduces GPU tensors only: a CPU
    tensor fails with "No backend type associated with device type cpu"), the CPU under gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_sum(tensor):
    """The sum of a tensor over processes, on the tensor's device (in place when it is on comm_device())."""
    if world() == 1:
        return tensor
    summed = tensor.to(comm_device())
    dist.all_reduce(summed)
    return summed.to(tensor.device)


def all_max(value):
    """The largest of a float over processes."""
    if world() == 1:
        return value
    t = torch.tensor([float(value)], device=comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def on_main(fn):
    """fn() on process 0 only (None elsewhere); an InputError it raises is raised on every process, so that
    none is left waiting for the others."""
    error, result = None, None
    if is_main():
        try:
            result = fn()
        except InputError as e:
            error = str(e)
    if world() > 1:
        box = [error]
        dist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise InputError(error)
    return result


def barrier():
    if world() > 1:
        dist.barrier()


def leave():
    """Wait for every process, then leave the process group: the last call of a main() under torchrun.
    A process that exits straight after a collective can die of SIGABRT ("terminate called without an
    active exception"): gloo's worker thread still holds that collective's tensors and needs the GIL to
    free them, which Python no longer hands out once it is shutting down. The barrier lets it finish; it
    still happened now and then, and exit_after() skips that shutdown."""
    if dist.is_initialized():
        barrier()
        dist.destroy_process_group()


def exit_after(main):
    """`if __name__ == "__main__": distributed.exit_after(main)`: run a script's main(); under torchrun, then end
    the process with main's exit status and without Python's shutdown. In that shutdown gloo's worker threads can
    still hold a finished collective's tensors, and freeing them needs the GIL, which Python no longer hands out:
    the process dies of SIGABRT ("terminate called without an active exception") after its work is done, and
    torchrun reports the run failed. It happened in about one in 20 two-process evaluations on a busy CPU, even
    after leave(). Every file is closed by then; only the screen's buffers are flushed here."""
    if "WORLD_SIZE" not in os.environ or sys.getprofile() or sys.gettrace():
        return main()  # a profiler or tracer (cProfile -o, coverage) writes its file after main or at exit
    code = 1
    try:
        main()
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:  # SystemExit("message"): Python would print it and exit with status 1
            print(e.code, file=sys.stderr)
    except BaseException:  # a traceback, as Python would print it
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Runner(torch.nn.Module):
    """runner(fn, *args) = fn(runner.model, *args), run as this module's forward. FSDP gathers a unit's
    weights in its forward only, so with the model sharded every use of it goes through here: the blocks
    are units of their own, and the embeddings, the final norm and the heads belong to this one."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, fn, *args):
        return fn(self.model, *args)


def shard(model):
    """A Runner of the model, sharded over all processes with FSDP2 (each block one unit, the rest at the
    Runner); in one process, the Runner alone. The weights are gathered in fp32, as stored: bf16 runs cast
    them under autocast exactly as one process does (an FSDP bf16 policy would also make the embeddings and
    the residual stream bf16, a different model from one process's: 0.16 nats apart on a log-prob of the
    toy), at twice the bytes gathered."""
    runner = Runner(model)
    if world() == 1:
        return runner
    from torch.distributed.fsdp import fully_shard

    for block in model.blocks:
        fully_shard(block)
    return fully_shard(runner)


def full(tensor):
    """The whole of a (possibly sharded) tensor; every process must call this for the same tensors."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def full_state(model):
    """{name: whole tensor on the CPU} of a (possibly sharded) model, on process 0 (None elsewhere): every
    process takes part in each tensor's gather, and process 0 alone keeps a copy in host memory."""
    state = {}
    for name, t in model.state_dict().items():
        whole = full(t)
        if is_main():
            state[name] = whole.detach().cpu()
    return state if is_main() else None


def like(param, value):
    """`value` (a whole tensor) laid out as `param` is: sharded the same way if param is."""
    if hasattr(param, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(value.to(param.device_mesh.device_type), param.device_mesh, param.placements)
    return value.to(param.device)


def optimizer_state(opt, prefix):
    """AdamW state as flat {prefix.i.key: whole tensor} for safetensors (no pickles anywhere), i the
    parameter's index; gathered from every process, so the file is the same whatever N wrote it."""
    state = {}
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            whole = full(v)  # every process gathers; process 0 alone keeps a copy, as in full_state
            if is_main():
                state[f"{prefix}.{i}.{k}"] = whole.detach().cpu().reshape(-1) if v.dim() == 0 else whole.detach().cpu()
    return state if is_main() else None


def load_optimizer_state(opt, tensors, prefix):
    """Restore optimizer_state's AdamW state, sharded as this process's parameters are (any N). tensors:
    (name, whole tensor) pairs, taken one at a time (a file read as it goes holds one in host memory)."""
    params = [p for group in opt.param_groups for p in group["params"]]
    sd = opt.state_dict()
    for name, value in tensors:
        head, i, key = name.split(".")
        if head == prefix:
            value = value.reshape(()) if key == "step" else like(params[int(i)], value)
            sd["state"].setdefault(int(i), {})[key] = value
    opt.load_state_dict(sd)
