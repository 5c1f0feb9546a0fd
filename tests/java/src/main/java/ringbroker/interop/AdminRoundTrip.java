package ringbroker.interop;

import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Issue 11: the 4.4 AdminClient describes the cluster, creates, lists, describes and deletes a topic and lists
 * offsets. Prints one
 * "OK step" line per step; any failure throws (exit status 1) with the exception, which names the API the
 * broker lacked when that is the cause (UnsupportedVersionException).
 *
 * Usage: AdminRoundTrip BOOTSTRAP TOPIC
 */
public final class AdminRoundTrip {
    /** Per-call limit: a broker that does not answer must fail the test, not hang it. */
    private static final long CALL_SECONDS = 30;
    private static final int PARTITIONS = 3;
    private static final int RECORDS_PER_PARTITION = 5;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(props)) {
            var cluster = admin.describeCluster();
            int nodes = cluster.nodes().get(CALL_SECONDS, TimeUnit.SECONDS).size();
            String clusterId = cluster.clusterId().get(CALL_SECONDS, TimeUnit.SECONDS);
            check(nodes == 1, "describeCluster: " + nodes + " nodes");
            System.out.println("OK describeCluster nodes=" + nodes + " cluster_id=" + clusterId);

            // One enforced config and one Kafka accepts but we only store: CreateTopics v5+ returns both.
            Map<String, String> wanted = Map.of("retention.ms", "86400000", "min.insync.replicas", "1");
            var created = admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1).configs(wanted)));
            created.all().get(CALL_SECONDS, TimeUnit.SECONDS);
            check(created.numPartitions(topic).get(CALL_SECONDS, TimeUnit.SECONDS) == PARTITIONS,
                    "createTopics: numPartitions");
            Config config = created.config(topic).get(CALL_SECONDS, TimeUnit.SECONDS);
            for (var e : wanted.entrySet()) {
                ConfigEntry entry = config.get(e.getKey());
                check(entry != null && e.getValue().equals(entry.value())
                        && entry.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                        "createTopics config " + e.getKey() + ": " + entry);
            }
            ConfigEntry policy = config.get("cleanup.policy");
            check(policy != null && "delete".equals(policy.value()), "createTopics default cleanup.policy: " + policy);
            System.out.println("OK create configs=" + config.entries().size());

            Set<String> names = admin.listTopics().names().get(CALL_SECONDS, TimeUnit.SECONDS);
            check(names.contains(topic), "listTopics lacks " + topic + ": " + names);
            System.out.println("OK list");

            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                    .get(CALL_SECONDS, TimeUnit.SECONDS).get(topic);
            check(d.partitions().size() == PARTITIONS, "describeTopics: " + d);
            check(d.partitions().stream().allMatch(p -> p.leader() != null && !p.leader().isEmpty()),
                    "describeTopics: a partition without leader: " + d);
            System.out.println("OK describe partitions=" + d.partitions().size());

            Properties pp = new Properties();
            pp.put("bootstrap.servers", bootstrap);
            pp.put("key.serializer", StringSerializer.class.getName());
            pp.put("value.serializer", StringSerializer.class.getName());
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
                for (int p = 0; p < PARTITIONS; p++) {
                    for (int i = 0; i < RECORDS_PER_PARTITION; i++) {
                        producer.send(new ProducerRecord<>(topic, p, "k" + i, "v" + i))
                                .get(CALL_SECONDS, TimeUnit.SECONDS);
                    }
                }
            }
            for (OffsetSpec spec : List.of(OffsetSpec.earliest(), OffsetSpec.latest())) {
                Map<TopicPartition, OffsetSpec> request = new java.util.HashMap<>();
                for (int p = 0; p < PARTITIONS; p++) {
                    request.put(new TopicPartition(topic, p), spec);
                }
                Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> offsets =
                        admin.listOffsets(request).all().get(CALL_SECONDS, TimeUnit.SECONDS);
                long want = spec instanceof OffsetSpec.EarliestSpec ? 0 : RECORDS_PER_PARTITION;
                for (var e : offsets.entrySet()) {
                    check(e.getValue().offset() == want, "listOffsets " + spec + " " + e);
                }
                System.out.println("OK listOffsets " + spec.getClass().getSimpleName() + " " + want);
            }

            admin.deleteTopics(List.of(topic)).all().get(CALL_SECONDS, TimeUnit.SECONDS);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(CALL_SECONDS);
            while (admin.listTopics().names().get(CALL_SECONDS, TimeUnit.SECONDS).contains(topic)) {
                check(System.nanoTime() < deadline, "topic still listed after delete");
                Thread.sleep(100);
            }
            System.out.println("OK delete");
        }
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalStateException(what);
        }
    }
}
