"""``mcrf predict`` across processes: ``torchrun --nproc_per_node N -m mcrf predict IN --output OUT``.

Under ``torchrun`` or ``accelerate launch`` (``WORLD_SIZE`` > 1; see ``launched_world``) the input is cut into blocks of
``batch_size * chunk_batches`` sentences — exactly the chunks a single process tags together — and
block ``k`` goes to rank ``k % N``. Each rank tags its blocks and writes their records to its own
part file in a hidden folder next to ``OUT``, with the size of each block. After a barrier, rank 0
alone assembles ``OUT``: the format's header, then the blocks in input order, into a temporary
file in the same folder that is fsynced and renamed over ``OUT`` (``mcrf.io.outputs.open_output``). So the output is byte-identical
to a single-process run (same order, same records, same batches), and a run killed at any point
leaves either the old ``OUT`` or none, never a complete-looking partial one (the hidden parts
folder and temporary file of a killed run can be deleted).

Every rank reads (and tokenizes) the whole input to find its blocks; the model work, the part of
the run that costs, is divided. Processes on several machines need ``OUT``'s folder on a shared
file system.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

from mcrf.errors import ConfigError
from mcrf.predict.formats import header, writer
from mcrf.predict.html import describe_model
from mcrf.predict.stream import PredictConfig, predict_stream, read_input

__all__ = ["launched_world", "predict_sharded", "write_shard", "assemble"]

logger = logging.getLogger(__name__)


WORLD_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")  # as Accelerate reads them


def launched_world() -> int:
    """The number of processes this one was launched among: ``WORLD_SIZE`` (torchrun, ``accelerate launch``
    on GPUs) or the MPI variables (``accelerate launch`` on CPUs goes through mpirun); 1 when not launched.

    Raises:
        ConfigError: the variable is set but not a positive integer.
    """
    for name in WORLD_VARIABLES:
        value = os.environ.get(name)
        if value is None:
            continue
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"expected the environment variable {name} to be a positive integer, got {value!r}; "
                              "launch with torchrun or accelerate launch, or unset it")
        return int(value)
    return 1


def write_shard(tagger, sentences: Iterable, config: PredictConfig, folder: Path, rank: int, world: int) -> int:
    """Tag the blocks of ``rank`` and write ``rank{r}.part`` (records) and ``rank{r}.index`` (per block:
    bytes and sentences) into ``folder``.

    Args:
        tagger: the model.
        sentences: the whole input (every rank reads all of it).
        config: batch sizes and output format.
        folder: the run's parts folder.
        rank: this process's index.
        world: the number of processes.

    Returns:
        The number of sentences this rank tagged.
    """
    write = writer(config.output_format)
    block_size = config.batch_size * config.chunk_batches
    stream = iter(sentences)
    count = 0
    with open(folder / f"rank{rank}.part", "wb") as part, open(folder / f"rank{rank}.index", "w") as index:
        for block_number in itertools.count():
            block = list(itertools.islice(stream, block_size))
            if not block:
                break
            if block_number % world != rank:
                continue
            text = io.StringIO(newline="\n")
            for prediction in predict_stream(tagger, block, config.batch_size, config.chunk_batches, config.batch_words):
                write(prediction, text)
            data = text.getvalue().encode("utf-8")
            part.write(data)
            index.write(f"{len(data)} {len(block)}\n")
            count += len(block)
    return count


def _index(path: Path) -> List[Tuple[int, int]]:
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]


def assemble(folder: Path, world: int, target: Path, first: str = "", inputs: Tuple[str, ...] = ()) -> int:
    """Write ``target`` from the parts of ``world`` ranks: ``first``, then block ``k`` from rank ``k % world``.

    Written through ``mcrf.io.outputs.open_output``: a file is replaced atomically once complete.

    Returns:
        The number of sentences written.
    """
    from mcrf.io.outputs import open_output

    indexes = [_index(folder / f"rank{rank}.index") for rank in range(world)]
    sentences = 0
    with open_output(target, inputs=inputs, binary=True) as out, contextlib.ExitStack() as stack:
        parts = [stack.enter_context(open(folder / f"rank{rank}.part", "rb")) for rank in range(world)]
        out.write(first.encode("utf-8"))
        for block_number in itertools.count():
            rank, position = block_number % world, block_number // world
            if position >= len(indexes[rank]):
                break
            size, count = indexes[rank][position]
            out.write(parts[rank].read(size))
            sentences += count
    return sentences


def predict_sharded(source: str, output: Optional[str], config: PredictConfig,
                    load: Callable[[Optional[str]], object], model_name: str = "") -> int:
    """Tag ``source`` across the launched processes into ``output`` (see the module docstring).

    Args:
        source: the input path (or ``-``: every rank would need the same standard input, so refused).
        output: the output file; required.
        config: prediction settings.
        load: ``device -> tagger`` (the CLI's model loader); the device is this rank's
            (``cuda:LOCAL_RANK`` or ``cpu``) unless ``config.device`` names one.
        model_name: where the model was loaded from, for the ``html`` page's header.

    Returns:
        0.
    """
    if output is None:
        raise ConfigError("with several processes one writer assembles the output: pass --output FILE")
    if source == "-":
        raise ConfigError("with several processes every rank reads the input: pass a file, not - (stdin)")
    from mcrf.io.outputs import check_output

    target = check_output(output, inputs=[source])
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState(cpu=config.device == "cpu")
    tagger = load(config.device or str(state.device))
    rank, world = state.process_index, state.num_processes
    # the parts beside a file target (a shared file system reaches both); a device or FIFO: the temporary folder
    beside = target.parent if not target.exists() or target.is_file() else None
    box = [tempfile.mkdtemp(prefix=f".{target.name}.parts-", dir=beside) if rank == 0 else None]
    broadcast_object_list(box)
    folder = Path(box[0])
    try:
        mine = write_shard(tagger, read_input(source, config.input_format, config.encoding), config, folder,
                           rank, world)
        logger.debug("rank %d of %d tagged %d sentences", rank, world, mine)
        state.wait_for_everyone()
        if rank == 0:
            top = header(config.output_format, describe_model(tagger, model_name))
            total = assemble(folder, world, target, top, inputs=(source,))
            logger.info("wrote %d sentences to %s (%d processes)", total, target, world)
    finally:
        if rank == 0:
            shutil.rmtree(folder, ignore_errors=True)
    return 0
