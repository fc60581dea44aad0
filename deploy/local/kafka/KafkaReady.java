// Readiness probe for the local broker: succeeds only when a real client can fetch
// cluster metadata (DescribeCluster) and sees a broker and an active controller.
// An open port alone is not enough: the socket opens before the broker has caught
// up with the KRaft metadata log. Uses kafka-clients from the same classpath as the
// broker, so it needs nothing else installed.
//
// Usage: java -cp 'libs/*:classes' KafkaReady <bootstrap> <timeout-seconds>
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;

public class KafkaReady {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 3000);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 5000);
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 500);
        String last = "no attempt";
        try (Admin admin = Admin.create(props)) {
            while (System.nanoTime() < deadline) {
                try {
                    DescribeClusterResult r = admin.describeCluster();
                    int nodes = r.nodes().get(5, TimeUnit.SECONDS).size();
                    String clusterId = r.clusterId().get(5, TimeUnit.SECONDS);
                    if (nodes > 0 && r.controller().get(5, TimeUnit.SECONDS) != null) {
                        System.out.println("ready: cluster " + clusterId + ", " + nodes + " broker(s)");
                        return;
                    }
                    last = "metadata has no brokers yet";
                } catch (Exception e) {
                    last = e.toString();
                }
                Thread.sleep(500);
            }
        }
        System.err.println("not ready: " + last);
        System.exit(1);
    }
}
