package ringbroker.interop;

import java.io.BufferedReader;
import java.io.FileWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Issue 21: members of one consumer group, each a kafka-clients 4.4 KafkaConsumer on its own thread, consuming
 * steadily and committing synchronously after each batch. Every rebalance callback, the member's generation and
 * member id, and commit failures are printed as one JSON line on stdout, stamped with System.nanoTime() (the
 * monotonic clock Python's time.monotonic() reads on Linux), so the test can tell whether a broker restart caused
 * a rebalance and measure per-partition gaps. Every processed record is appended as "partition offset nanos" to
 * OUT_DIR/member-N.records before its offset is committed.
 *
 * Control on stdin, one command per line: "add" starts one more member, "stop N" closes member N (LeaveGroup),
 * "quit" closes every member and exits; EOF on stdin is "quit". (A member that dies without a LeaveGroup is a
 * process killed with SIGKILL: run one member per process for that.)
 *
 * Usage: GroupMembers BOOTSTRAP TOPIC GROUP MEMBERS OUT_DIR [consumer.config=value ...]
 * The pseudo-config {@code subscription.pattern=REGEX} subscribes with a broker-side regular expression
 * (KIP-848's SubscriptionPattern, group.protocol=consumer) instead of to TOPIC.
 */
public final class GroupMembers {
    /** How long one poll waits for records. */
    private static final Duration POLL = Duration.ofMillis(100);
    /** How often each member prints its generation and member id. */
    private static final long STATUS_EVERY_NANOS = 1_000_000_000L;

    private static final Object STDOUT = new Object();
    /** Not a consumer config: the broker-side regex to subscribe with instead of TOPIC. */
    private static final String PATTERN_ARG = "subscription.pattern";

    private final String bootstrap;
    private final String topic;
    private final String group;
    private final Path outDir;
    private final Map<String, String> extra;
    private final Map<Integer, Member> members = new ConcurrentHashMap<>();

    private GroupMembers(String bootstrap, String topic, String group, Path outDir, Map<String, String> extra) {
        this.bootstrap = bootstrap;
        this.topic = topic;
        this.group = group;
        this.outDir = outDir;
        this.extra = extra;
    }

    static void emit(String json) {
        synchronized (STDOUT) {
            System.out.println(json);
            System.out.flush();
        }
    }

    static String quote(String s) {
        return s == null ? "null" : "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    static String partitions(Collection<TopicPartition> parts) {
        TreeSet<Integer> sorted = new TreeSet<>();
        parts.forEach(tp -> sorted.add(tp.partition()));
        return sorted.toString();
    }

    /** One consumer and its thread. */
    final class Member implements Runnable, ConsumerRebalanceListener {
        final int index;
        final KafkaConsumer<byte[], byte[]> consumer;
        final AtomicBoolean stop = new AtomicBoolean();
        final Thread thread;
        private final PrintWriter records;

        Member(int index) throws IOException {
            this.index = index;
            Properties p = new Properties();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.CLIENT_ID_CONFIG, group + "-member-" + index);
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            extra.forEach((k, v) -> {
                if (!k.equals(PATTERN_ARG)) {
                    p.put(k, v.replace("{index}", Integer.toString(index)));
                }
            });
            this.consumer = new KafkaConsumer<>(p);
            this.records = new PrintWriter(new FileWriter(outDir.resolve("member-" + index + ".records").toFile(),
                    StandardCharsets.UTF_8, true));
            this.thread = new Thread(this, "member-" + index);
        }

        private String identity() {
            ConsumerGroupMetadata meta = consumer.groupMetadata();
            return "\"gen\":" + meta.generationId() + ",\"member\":" + quote(meta.memberId());
        }

        private void event(String kind, String fields) {
            emit("{\"ev\":\"" + kind + "\",\"c\":" + index + ",\"t\":" + System.nanoTime() + (fields.isEmpty() ? "" : ",")
                    + fields + "}");
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> parts) {
            event("assign", "\"parts\":" + partitions(parts) + "," + identity());
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> parts) {
            event("revoke", "\"parts\":" + partitions(parts) + "," + identity());
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> parts) {
            event("lost", "\"parts\":" + partitions(parts) + "," + identity());
        }

        @Override
        public void run() {
            long nextStatus = 0;
            try {
                String pattern = extra.get(PATTERN_ARG);
                if (pattern != null) {
                    consumer.subscribe(new SubscriptionPattern(pattern), this);
                } else {
                    consumer.subscribe(List.of(topic), this);
                }
                while (!stop.get()) {
                    ConsumerRecords<byte[], byte[]> batch = consumer.poll(POLL);
                    long now = System.nanoTime();
                    if (now >= nextStatus) {
                        event("status", partitionsField() + "," + identity());
                        nextStatus = now + STATUS_EVERY_NANOS;
                    }
                    if (batch.isEmpty()) {
                        continue;
                    }
                    Map<TopicPartition, OffsetAndMetadata> upto = new HashMap<>();
                    for (ConsumerRecord<byte[], byte[]> r : batch) {
                        records.print(r.partition() + " " + r.offset() + " " + now + "\n");
                        upto.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    records.flush();
                    try {
                        consumer.commitSync(upto);
                    } catch (RuntimeException e) {
                        event("commit_error", "\"error\":" + quote(e.getClass().getSimpleName() + ": " + e.getMessage()));
                    }
                }
            } catch (WakeupException e) {
                // close() below
            } catch (RuntimeException e) {
                event("error", "\"error\":" + quote(e.getClass().getSimpleName() + ": " + e.getMessage()));
            } finally {
                records.close();
                consumer.close();
                event("closed", "");
            }
        }

        private String partitionsField() {
            TreeSet<String> named = new TreeSet<>();
            consumer.assignment().forEach(tp -> named.add(quote(tp.topic() + "-" + tp.partition())));
            return "\"parts\":" + partitions(consumer.assignment()) + ",\"tps\":" + named;
        }
    }

    private void add() throws IOException {
        int index = members.size();
        Member m = new Member(index);
        members.put(index, m);
        m.thread.start();
        emit("{\"ev\":\"started\",\"c\":" + index + "}");
    }

    private void stop(int index) throws InterruptedException {
        Member m = members.get(index);
        if (m == null) {
            return;
        }
        m.stop.set(true);
        m.thread.join();
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> extra = new HashMap<>();
        for (int i = 5; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            extra.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        GroupMembers g = new GroupMembers(args[0], args[1], args[2], Path.of(args[4]), extra);
        int initial = Integer.parseInt(args[3]);
        for (int i = 0; i < initial; i++) {
            g.add();
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] cmd = line.trim().split("\\s+");
            if (cmd[0].equals("quit")) {
                break;
            } else if (cmd[0].equals("add")) {
                g.add();
            } else if (cmd[0].equals("stop")) {
                g.stop(Integer.parseInt(cmd[1]));
            }
        }
        List<Member> all = new ArrayList<>(g.members.values());
        all.forEach(m -> m.stop.set(true));
        for (Member m : all) {
            m.thread.join();
        }
        emit("{\"ev\":\"exit\"}");
    }
}
