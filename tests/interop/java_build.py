"""Compiling the Java interop programs (tests/java) against Kafka jars fetched with Maven: shared by the tests that
run them. Skips the calling test, saying why, when java/javac (or the jars and mvn) are absent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

# Fetching the jars on a cold Maven cache, and compiling, may take this long.
MAVEN_TIMEOUT_S = 900
JAVAC_TIMEOUT_S = 300


def compile_against(pom: Path, lib_dir: Path, marker_jar: str, sources: Path, classes: Path) -> str:
    """Fetches `pom`'s dependencies into `lib_dir` unless a jar matching `marker_jar` is there, compiles every
    .java below `sources` into `classes`, and returns the class path."""
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` is not installed (apt-get install openjdk-17-jdk-headless)")
    if not any(lib_dir.glob(marker_jar)):
        if shutil.which("mvn") is None:
            pytest.skip(f"no {marker_jar} in {lib_dir} and `mvn` is not installed to fetch it")
        subprocess.run(["mvn", "-q", "-f", str(pom), "dependency:copy-dependencies"], check=True,
                       timeout=MAVEN_TIMEOUT_S)
    files = [str(p) for p in sources.rglob("*.java")]
    subprocess.run(["javac", "-d", str(classes), "-cp", f"{lib_dir}/*", *files], check=True,
                   timeout=JAVAC_TIMEOUT_S)
    return f"{classes}:{lib_dir}/*"
