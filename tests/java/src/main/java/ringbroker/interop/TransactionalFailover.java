package ringbroker.interop;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Issue 22: the 4.4 Java transactional producer across the loss of its transaction coordinator. Runs TRANSACTIONS
 * transactions, each writing "t{n}-p{partition}-{k}" twice to every partition of TOPIC, and aborts every third.
 * After writing transaction KILL_AT (acknowledged, not committed) it prints "OPEN KILL_AT" and waits for a line on
 * stdin: the test kills the coordinator meanwhile; then it commits that transaction against whatever broker
 * coordinates now. As an application does, it retries a commit that timed out, aborts on an abortable error and
 * makes a new producer on a fatal one (a transaction whose commit was then in flight is reported ambiguous: the
 * coordinator may have committed it). Prints "RESULT committed=a,b aborted=c ambiguous= reinitialised=n".
 *
 * Usage: TransactionalFailover BOOTSTRAP TOPIC PARTITIONS TRANSACTIONAL_ID TRANSACTIONS KILL_AT
 */
public final class TransactionalFailover {
    /** Commits retried after a timeout before the transaction counts as ambiguous. */
    private static final int COMMIT_ATTEMPTS = 5;

    private final Properties config;
    private KafkaProducer<String, String> producer;
    private final List<Integer> committed = new ArrayList<>();
    private final List<Integer> aborted = new ArrayList<>();
    private final List<Integer> ambiguous = new ArrayList<>();
    private int reinitialised;

    private TransactionalFailover(Properties config) {
        this.config = config;
        this.producer = newProducer();
    }

    private KafkaProducer<String, String> newProducer() {
        KafkaProducer<String, String> p = new KafkaProducer<>(config);
        p.initTransactions();
        return p;
    }

    private void replaceProducer() {
        producer.close();
        producer = newProducer();
        reinitialised++;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        String transactionalId = args[3];
        int transactions = Integer.parseInt(args[4]);
        int killAt = Integer.parseInt(args[5]);

        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", transactionalId);
        p.put("transaction.timeout.ms", "60000");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

        TransactionalFailover app = new TransactionalFailover(p);
        for (int t = 0; t < transactions; t++) {
            try {
                app.producer.beginTransaction();
                for (int partition = 0; partition < partitions; partition++) {
                    for (int k = 0; k < 2; k++) {
                        String value = "t" + t + "-p" + partition + "-" + k;
                        app.producer.send(new ProducerRecord<>(topic, partition, null, value));
                    }
                }
                app.producer.flush();
            } catch (ProducerFencedException | InvalidProducerEpochException e) {
                app.aborted.add(t);
                app.replaceProducer();
                continue;
            } catch (KafkaException e) {
                System.out.println("transaction " + t + " write: " + e);
                app.producer.abortTransaction();
                app.aborted.add(t);
                continue;
            }
            if (t == killAt) {
                System.out.println("OPEN " + t);
                System.out.flush();
                stdin.readLine();
            }
            app.end(t, t == killAt || t % 3 != 2);
        }
        app.producer.close();
        System.out.println("RESULT committed=" + join(app.committed) + " aborted=" + join(app.aborted)
                + " ambiguous=" + join(app.ambiguous) + " reinitialised=" + app.reinitialised);
    }

    private void end(int t, boolean commit) {
        for (int attempt = 1; ; attempt++) {
            try {
                if (commit) {
                    producer.commitTransaction();
                    committed.add(t);
                } else {
                    producer.abortTransaction();
                    aborted.add(t);
                }
                return;
            } catch (TimeoutException e) {
                System.out.println("transaction " + t + " end timed out (attempt " + attempt + "): " + e);
                if (attempt < COMMIT_ATTEMPTS) {
                    continue;
                }
                (commit ? ambiguous : aborted).add(t);
                replaceProducer();
                return;
            } catch (ProducerFencedException | InvalidProducerEpochException e) {
                System.out.println("transaction " + t + " end: " + e);
                (commit ? ambiguous : aborted).add(t);
                replaceProducer();
                return;
            } catch (KafkaException e) {
                System.out.println("transaction " + t + " end: " + e);
                try {
                    producer.abortTransaction();
                    aborted.add(t);
                } catch (KafkaException fatal) {
                    (commit ? ambiguous : aborted).add(t);
                    replaceProducer();
                }
                return;
            }
        }
    }

    private static String join(List<Integer> list) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < list.size(); i++) {
            if (i > 0) {
                out.append(',');
            }
            out.append(list.get(i));
        }
        return out.toString();
    }
}
