"""Choose where batch steps run: in-process (default) or on Spark, from the pipeline config."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from longtail.core.config import PipelineConfig
from longtail.core.executors import TableMapper, map_in_process


@contextmanager
def table_mapper(config: PipelineConfig) -> Iterator[TableMapper]:
    """The mapper for `config.executor`; a Spark session lives exactly as long as the context."""
    if config.executor == "local":
        yield map_in_process
        return
    from longtail.pipeline.spark import SparkTableMapper, start_session

    session = start_session(config)
    work_dir = Path(tempfile.mkdtemp(prefix="longtail-batches-"))
    try:
        yield SparkTableMapper(session, config.spark_partitions, work_dir)
    finally:
        session.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
