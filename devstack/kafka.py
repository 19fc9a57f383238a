"""A single-node Apache Kafka broker (KRaft, broker + controller) run from Maven Central jars."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from aiokafka.admin import AIOKafkaAdminClient

from devstack.procs import (
    DevstackError,
    pid_alive,
    port_open,
    read_pid,
    spawn_detached,
    stop_process_group,
    with_log_tail,
    write_pid,
)

log = logging.getLogger("devstack.kafka")

KAFKA_VERSION = "4.1.1"
BROKER_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
MAIN_CLASS = "kafka.Kafka"
HERE = Path(__file__).resolve().parent / "kafka"
POM = HERE / "pom.xml"
LOG4J2_CONFIG = HERE / "log4j2.yaml"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KafkaBroker:
    """Where one local broker keeps its jars, data, config, pid and log, and its ports."""

    libs_dir: Path
    home: Path  # holds data/ and server.properties
    pid_file: Path
    log_file: Path
    port: int = 9092

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        return read_pid(self.pid_file, MAIN_CLASS)

    def running(self) -> bool:
        return self.pid() is not None

    def ensure_jars(self) -> None:
        """Resolve the broker jars into `libs_dir` with Maven, unless they are there already."""
        if (self.libs_dir / BROKER_JAR).is_file():
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise DevstackError("Maven (mvn) is not on PATH: it is needed once to fetch Kafka jars")
        self.libs_dir.mkdir(parents=True, exist_ok=True)
        log.info("fetching Kafka %s jars into %s (once)", KAFKA_VERSION, self.libs_dir)
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={self.libs_dir}",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not (self.libs_dir / BROKER_JAR).is_file():
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise DevstackError(f"mvn could not fetch the Kafka jars:\n{output}")

    def write_config(self) -> None:
        """Write server.properties (every start, so port changes take effect)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir.resolve()),
            # Topics come from shared.topics.ensure_topics, never from a typo in a consumer.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests start consumer groups often; the default 3 s delay would slow every one.
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
        }
        text = "# Written by devstack/kafka.py on every start; edits are overwritten.\n"
        text += "".join(f"{key}={value}\n" for key, value in props.items())
        self.config_file.write_text(text)

    def _java(self, *args: str) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java or not Path(java).is_file():
            raise DevstackError("java not found: install Java 17+ or set JAVA_HOME")
        return [
            java,
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            "-cp",
            f"{self.libs_dir}/*",
            *args,
        ]

    def format_storage(self) -> None:
        """Format the KRaft storage once; later starts reuse the data (and the cluster id)."""
        if (self.data_dir / "meta.properties").is_file():
            return
        uuid = self._run_tool("random-uuid").strip().splitlines()[-1].strip()
        log.info("formatting Kafka storage in %s (cluster id %s)", self.data_dir, uuid)
        # `=` keeps ids that start with '-' from being parsed as an option.
        self._run_tool("format", f"--cluster-id={uuid}", "-c", str(self.config_file))

    def _run_tool(self, *args: str) -> str:
        argv = self._java("kafka.tools.StorageTool", *args)
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise DevstackError(f"kafka StorageTool {args[0]} failed:\n{output}")
        return result.stdout

    def start(self) -> int:
        """Start the broker detached unless it already runs; return its pid (no readiness wait)."""
        pid = self.pid()
        if pid is not None:
            return pid
        for port in (self.port, self.controller_port):
            if port_open(port):
                raise DevstackError(
                    f"port {port} is taken by another process: stop it or set "
                    "SMM_DEVSTACK_KAFKA_PORT (the controller uses that port + 1)"
                )
        self.ensure_jars()
        self.write_config()
        self.format_storage()
        argv = self._java(MAIN_CLASS, str(self.config_file))
        # Heap and GC flags go before the class path; -D/-cp order does not matter to java.
        argv[1:1] = ["-Xms256m", "-Xmx768m", "-XX:+UseG1GC"]
        log.info("starting Kafka on %s (log %s)", self.bootstrap, self.log_file)
        pid = spawn_detached(argv, log_file=self.log_file, cwd=self.home)
        write_pid(self.pid_file, pid)
        return pid

    def stop(self) -> bool:
        """Stop the broker if it runs; return whether it did."""
        pid = self.pid()
        if pid is None:
            return False
        log.info("stopping Kafka (pid %d)", pid)
        stop_process_group(pid, MAIN_CLASS, timeout_s=STOP_TIMEOUT_S)
        self.pid_file.unlink(missing_ok=True)
        return True

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until the broker answers a metadata request; fail early if the process died."""
        deadline = time.monotonic() + timeout_s
        pid = self.pid()
        while True:
            if await is_ready(self.bootstrap):
                return
            if pid is not None and not pid_alive(pid, MAIN_CLASS):
                raise DevstackError(with_log_tail("Kafka exited during start-up", self.log_file))
            if time.monotonic() >= deadline:
                raise DevstackError(
                    with_log_tail(
                        f"Kafka not ready on {self.bootstrap} after {timeout_s:.0f} s",
                        self.log_file,
                    )
                )
            await asyncio.sleep(0.5)


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """Silence aiokafka's connection errors while we poll a broker that is still booting."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def list_topics(bootstrap: str, timeout_s: float = 5.0) -> list[str]:
    """The topic names the cluster reports (raises if it does not answer within `timeout_s`)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            return cast(list[str], await admin.list_topics())
    finally:
        await admin.close()


async def is_ready(bootstrap: str, timeout_s: float = 5.0) -> bool:
    with _quiet_aiokafka():
        try:
            await list_topics(bootstrap, timeout_s)
        except Exception:  # any failure means "not yet"; the caller owns the deadline
            return False
    return True


async def wait_external(bootstrap: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait for a broker the dev stack does not run (SMM_KAFKA_BOOTSTRAP_SERVERS)."""
    deadline = time.monotonic() + timeout_s
    while not await is_ready(bootstrap):
        if time.monotonic() >= deadline:
            raise DevstackError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f} s")
        await asyncio.sleep(1.0)
