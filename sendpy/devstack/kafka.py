"""Apache Kafka in KRaft mode (one broker+controller on loopback), from Maven Central jars.

The release scripts only wrap two classes: `kafka.tools.StorageTool format` prepares the log
directory, `kafka.Kafka server.properties` runs the server. We call them directly.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from importlib import resources
from pathlib import Path

from sendpy.devstack.ports import free_port, wait_for_port
from sendpy.devstack.process import Child

KAFKA_VERSION = os.environ.get("SENDPY_KAFKA_VERSION", "4.4.0")


def fetch_jars(cache_dir: Path, version: str = KAFKA_VERSION) -> Path:
    """The folder of jars for `version`, downloaded once with Maven into `cache_dir`."""
    libs = cache_dir / f"kafka-{version}" / "libs"
    if (libs / f"kafka_2.13-{version}.jar").exists():
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError("Kafka needs Java 17+ and Maven on PATH (apt-get install default-jdk-headless maven)")
    work = cache_dir / f"kafka-{version}"
    work.mkdir(parents=True, exist_ok=True)
    pom = resources.files("sendpy.devstack").joinpath("kafka-runtime.xml").read_text()
    (work / "pom.xml").write_text(pom.replace("@KAFKA_VERSION@", version))
    partial = work / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={partial}"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"fetching Kafka {version} from Maven Central failed:\n{result.stdout}{result.stderr}")
    partial.rename(libs)  # only a complete download is ever used
    return libs


class KafkaServer:
    def __init__(self, data_dir: Path, cache_dir: Path, port: int | None = None, heap: str = "512m") -> None:
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap = heap
        self._child: Child | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> Path:
        logs = self.data_dir / "logs"
        path = self.data_dir / "server.properties"
        path.write_text(
            "\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={logs}",
                # Like MSK: topics exist only when created on purpose.
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "num.partitions=1",
                "",
            ])
        )
        return path

    def start(self, timeout: float = 60.0) -> None:
        libs = fetch_jars(self.cache_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        properties = self._properties()
        classpath = f"{libs}/*"
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = "-"
            while cluster_id.startswith("-"):  # a leading dash would read as an option
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            result = subprocess.run(
                ["java", "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                 "-c", str(properties), "--ignore-formatted"],
                capture_output=True, text=True, check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"formatting Kafka's storage failed:\n{result.stdout}{result.stderr}")
        self._child = Child(
            "kafka",
            ["java", f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC",
             "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath, "kafka.Kafka", str(properties)],
            self.data_dir / "server.log",
        )
        self._child.start()
        try:
            wait_for_port(self.port, timeout, alive=self._child.alive)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"Kafka did not start: {exc}\n{self._child.tail()}") from None

    def alive(self) -> bool:
        return self._child is not None and self._child.alive()

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop(timeout=30)

    def kill(self) -> None:
        if self._child is not None:
            self._child.kill()
