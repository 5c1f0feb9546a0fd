#!/usr/bin/env bash
# Fetches Apache Kafka Connect 4.4.0 from Maven Central into tests/interop/connect/target:
#   target/lib/                    the worker's class path (connect-runtime, -json, -transforms, clients, log4j2)
#   target/plugins/connect-file/   FileStreamSourceConnector + FileStreamSinkConnector, compiled here from the
#                                  published connect-file 4.3.1 sources (no 4.4.0 binary is published; see pom.xml)
# Idempotent: does nothing when both are present. Needs mvn and javac (JDK 17).
set -euo pipefail
cd "$(dirname "$0")"
LIB=target/lib
PLUGIN=target/plugins/connect-file
if ! compgen -G "${LIB}/connect-runtime-*.jar" >/dev/null; then
    mvn -q -f pom.xml dependency:copy-dependencies
fi
if [ ! -f "${PLUGIN}/connect-file.jar" ]; then
    rm -rf target/connect-file-src target/connect-file-classes
    mvn -q -f pom.xml dependency:unpack@connect-file-sources
    # The one incompatibility with kafka-clients 4.4: AppInfoParser moved to the internals package.
    grep -rl 'import org.apache.kafka.common.utils.AppInfoParser;' target/connect-file-src \
        | xargs sed -i 's/import org.apache.kafka.common.utils.AppInfoParser;/import org.apache.kafka.common.utils.internals.AppInfoParser;/'
    mkdir -p target/connect-file-classes "${PLUGIN}"
    javac -nowarn -d target/connect-file-classes -cp "${LIB}/*" $(find target/connect-file-src -name '*.java')
    cp -r target/connect-file-src/META-INF target/connect-file-classes/
    jar cf "${PLUGIN}/connect-file.jar" -C target/connect-file-classes .
fi
ls "${LIB}"/connect-runtime-*.jar "${PLUGIN}/connect-file.jar"
