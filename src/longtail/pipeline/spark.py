"""Run pure batch functions on Apache Spark through mapInPandas, and start/stop a standalone cluster on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import polars as pl

from longtail.core.config import PipelineConfig
from longtail.core.errors import ExecutorError
from longtail.core.executors import BatchFunction, OutputSchema, Rows, held_table

if TYPE_CHECKING:
    import pandas as pd
    from polars._typing import PolarsDataType
    from pyspark.sql import SparkSession

LOOPBACK = "127.0.0.1"
_SPARK_TYPES: dict[PolarsDataType, str] = {
    pl.String: "string",
    pl.Int64: "bigint",
    pl.Int32: "int",
    pl.Float64: "double",
    pl.Float32: "float",
    pl.Boolean: "boolean",
    pl.Binary: "binary",
}


def _spark_type(dtype: PolarsDataType) -> str | None:
    """The Spark SQL type of a polars type: flat types, timestamps, and lists of them; None when it has none."""
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    if isinstance(dtype, pl.List):
        inner = _spark_type(dtype.inner)
        return f"array<{inner}>" if inner else None
    return _SPARK_TYPES.get(dtype.base_type())


def spark_ddl(schema: OutputSchema) -> str:
    """A Spark DDL schema string for a polars schema of flat columns (and lists of them)."""
    parts = []
    for name, dtype in schema.items():
        spark_type = _spark_type(dtype)
        if spark_type is None:
            raise ExecutorError(f"column '{name}' of type {dtype} cannot cross to Spark; use flat types or lists of them")
        parts.append(f"`{name}` {spark_type}")
    return ", ".join(parts)


def conform(frame: pl.DataFrame, schema: OutputSchema) -> pl.DataFrame:
    """Cast a frame that went through pandas back to the exact polars schema (UTC timestamps included)."""
    columns = []
    for name, dtype in schema.items():
        column = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            current = frame.schema[name]
            if isinstance(current, pl.Datetime) and current.time_zone is None:
                column = column.dt.replace_time_zone("UTC")
            elif isinstance(current, pl.Datetime):
                column = column.dt.convert_time_zone("UTC")
            column = column.dt.cast_time_unit(dtype.time_unit or "us")
        columns.append(column.cast(dtype).alias(name))
    return frame.select(columns)


def run_partition(batches: Iterator[pd.DataFrame], function: BatchFunction, input_schema: OutputSchema, output_schema: OutputSchema) -> Iterator[pd.DataFrame]:
    """Worker side: gather the partition's batches (so grouped rows meet), run the pure function, return pandas."""
    import pandas as pd

    frames = list(batches)
    if not frames:
        return
    whole = conform(pl.from_pandas(pd.concat(frames, ignore_index=True)), input_schema)
    yield conform(function(whole), output_schema).to_pandas()


class SparkTableMapper:
    """A table mapper (see core.executors.TableMapper) backed by a Spark session."""

    def __init__(self, session: SparkSession, partitions: int, work_dir: Path) -> None:
        self.session = session
        self.partitions = partitions
        self.work_dir = work_dir

    def __call__(self, table: Rows, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> pl.DataFrame:
        """Ship the held table as Parquet, run `function` per partition (co-partitioned by `group_key`), collect as Arrow."""
        held = held_table(table)
        path = self.work_dir / f"input-{uuid.uuid4().hex}.parquet"
        held.write_parquet(path)
        frame = self.session.read.parquet(str(path))
        frame = frame.repartition(self.partitions, group_key) if group_key else frame.repartition(self.partitions)
        input_schema = dict(held.schema)

        def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            return run_partition(batches, function, input_schema, output_schema)

        result = frame.mapInPandas(run, spark_ddl(output_schema)).toArrow()
        path.unlink(missing_ok=True)
        collected = pl.from_arrow(result)
        assert isinstance(collected, pl.DataFrame)  # a Spark result is a table, never a single column
        return conform(collected, output_schema)


def _master_address(master: str) -> tuple[str, int] | None:
    if not master.startswith("spark://"):
        return None
    host, _, port = master.removeprefix("spark://").partition(":")
    return host, int(port or 7077)


def check_master_reachable(master: str, timeout: float) -> None:
    """Fail fast, with a clear message, when a standalone master does not accept connections."""
    address = _master_address(master)
    if address is None:
        return
    try:
        with socket.create_connection(address, timeout=timeout):
            pass
    except OSError as error:
        raise ExecutorError(f"Spark master {master} is not reachable ({error}); start the cluster or set pipeline.executor: local") from None


def start_session(config: PipelineConfig, app_name: str = "longtail") -> SparkSession:
    """A Spark session on the configured master, with Arrow on and UTC time; raises if no executor joins in time."""
    check_master_reachable(config.spark_master, config.spark_connect_timeout_seconds)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(config.spark_master)
        .appName(app_name)
        .config("spark.driver.host", LOOPBACK)
        .config("spark.driver.bindAddress", LOOPBACK)
        .config("spark.driver.memory", config.spark_driver_memory)
        .config("spark.executor.memory", config.spark_executor_memory)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "200000")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    if _master_address(config.spark_master) is not None:
        _wait_for_executor(session, config)
    return session


def _wait_for_executor(session: SparkSession, config: PipelineConfig) -> None:
    deadline = time.monotonic() + config.spark_connect_timeout_seconds
    status = session.sparkContext._jsc.sc().getExecutorMemoryStatus()  # private: Spark has no public API for this
    while status.size() < 2:  # the driver itself is the first entry
        if time.monotonic() > deadline:
            session.stop()
            raise ExecutorError(f"no Spark executor joined {config.spark_master} within {config.spark_connect_timeout_seconds:.0f}s")
        time.sleep(0.5)
        status = session.sparkContext._jsc.sc().getExecutorMemoryStatus()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


class StandaloneCluster:
    """A Spark standalone master and worker on loopback, started from the scripts inside the pyspark package."""

    def __init__(self, worker_cores: int = 1, worker_memory: str = "1g", start_timeout: float = 120.0) -> None:
        self.worker_cores = worker_cores
        self.worker_memory = worker_memory
        self.start_timeout = start_timeout
        self.port = _free_port()
        self.master_url = f"spark://{LOOPBACK}:{self.port}"
        self._processes: list[subprocess.Popen[bytes]] = []
        self._work_dir = Path(tempfile.mkdtemp(prefix="longtail-spark-"))

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "SPARK_LOCAL_IP": LOOPBACK,
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_WORKER_DIR": str(self._work_dir / "worker"),
            "SPARK_LOG_DIR": str(self._work_dir / "logs"),
        }

    def _launch(self, *arguments: str) -> None:
        log = (self._work_dir / f"{len(self._processes)}.log").open("wb")
        process = subprocess.Popen([str(_spark_class()), *arguments], env=self._environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._processes.append(process)

    def start(self) -> StandaloneCluster:
        """Start the master, wait for its port, start one worker."""
        self._launch("org.apache.spark.deploy.master.Master", "--host", LOOPBACK, "--port", str(self.port), "--webui-port", str(_free_port()))
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                check_master_reachable(self.master_url, 1.0)
                break
            except ExecutorError:
                if time.monotonic() > deadline or self._processes[0].poll() is not None:
                    self.stop()
                    raise ExecutorError(f"the Spark master did not start within {self.start_timeout:.0f}s; see {self._work_dir}") from None
                time.sleep(0.5)
        self._launch(
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            LOOPBACK,
            "--cores",
            str(self.worker_cores),
            "--memory",
            self.worker_memory,
            "--webui-port",
            str(_free_port()),
            self.master_url,
        )
        return self

    def stop(self) -> None:
        """Stop the worker and the master, and remove their files."""
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        self._processes.clear()
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()
