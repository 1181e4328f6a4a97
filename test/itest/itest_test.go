package itest_test

import (
	"bufio"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"function/test/itest"
)

// TestKafkaPlumbing proves the test infrastructure end to end: the CLI tools
// from the fetched jars and kcat both reach the broker in KAFKA_BROKERS.
func TestKafkaPlumbing(t *testing.T) {
	brokers := itest.Kafka(t)
	topic := itest.UniqueName(t, "itest")

	if _, err := itest.KafkaTool(t, "kafka-topics", "--bootstrap-server", brokers,
		"--create", "--topic", topic, "--partitions", "2", "--replication-factor", "1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := itest.KafkaTool(t, "kafka-topics", "--bootstrap-server", brokers, "--delete", "--topic", topic); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})

	list, err := itest.KafkaTool(t, "kafka-topics", "--bootstrap-server", brokers, "--list")
	if err != nil {
		t.Fatal(err)
	}
	if !containsLine(list, topic) {
		t.Fatalf("kafka-topics --list does not show %s:\n%s", topic, list)
	}

	meta, err := itest.Kcat(t, nil, "-b", brokers, "-L", "-t", topic)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(meta, `topic "`+topic+`" with 2 partitions`) {
		t.Fatalf("kcat -L does not show %s with 2 partitions:\n%s", topic, meta)
	}

	if _, err := itest.Kcat(t, []byte("k1:v1\nk2:v2\n"), "-b", brokers, "-P", "-t", topic, "-K:", "-X", "acks=all"); err != nil {
		t.Fatal(err)
	}
	got, err := itest.Kcat(t, nil, "-b", brokers, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k=%s\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"k1=v1", "k2=v2"} {
		if !containsLine(got, want) {
			t.Fatalf("consumed records %q lack %q", got, want)
		}
	}
}

// TestRedisPlumbing checks that REDIS_ADDR answers PING over RESP.
func TestRedisPlumbing(t *testing.T) {
	addr := itest.Redis(t)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if pw := itest.RedisPassword(); pw != "" {
		if _, err := c.Write([]byte("*2\r\n$4\r\nAUTH\r\n$" + strconv.Itoa(len(pw)) + "\r\n" + pw + "\r\n")); err != nil {
			t.Fatal(err)
		}
		if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "+OK") {
			t.Fatalf("AUTH: %q", line)
		}
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, _ := r.ReadString('\n'); line != "+PONG\r\n" {
		t.Fatalf("PING: %q", line)
	}
}

// TestUniqueName needs no infrastructure.
func TestUniqueName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9-]{1,249}$`)
	seen := map[string]bool{}
	for range 100 {
		n := itest.UniqueName(t, "Events.Topic_X")
		if !valid.MatchString(n) {
			t.Fatalf("%q is not a safe topic name", n)
		}
		if seen[n] {
			t.Fatalf("duplicate name %q", n)
		}
		seen[n] = true
	}
	if n := itest.UniqueName(t, "orders"); !strings.HasPrefix(n, "orders-testuniquename-") {
		t.Fatalf("UniqueName = %q, want prefix orders-testuniquename-", n)
	}
}

func containsLine(s, want string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}
