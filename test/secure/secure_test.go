// Package secure tests tide's secured connections against the real servers: Kafka
// with SASL (SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN) on the SASL listener that
// test/infra/kafka.sh opens with KAFKA_SASL=scram (test/infra/up.sh does), and
// redis-server with a password, over plain TCP and over TLS.
package secure

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"function/functions/ingest"
	"function/shared/config"
	"function/shared/embedded"
	"function/shared/kafka"
	"function/shared/logging"
	"function/shared/metrics"
	"function/shared/ratelimit"
	"function/shared/store"
	"function/test/itest"
	"function/test/pipelinetest"
)

// saslBrokers returns the SASL listener and its test user, skipping (or failing
// under CI=true) when Kafka was started without KAFKA_SASL=scram.
func saslBrokers(t *testing.T) (brokers []string, user, password string) {
	t.Helper()
	b := os.Getenv("KAFKA_SASL_BROKERS")
	if b == "" {
		itest.Missing(t, "KAFKA_SASL_BROKERS is not set: no Kafka SASL listener; start Kafka with "+
			"`KAFKA_SASL=scram test/infra/kafka.sh start` (test/infra/up.sh does) and export the KAFKA_SASL_* lines of its kafka.env")
	}
	return strings.Split(b, ","), os.Getenv("KAFKA_SASL_TEST_USER"), os.Getenv("KAFKA_SASL_TEST_PASSWORD")
}

// TestKafkaSASL publishes through ingest and reads back over the SASL listener with
// each mechanism, and shows that a wrong password or no SASL is refused.
func TestKafkaSASL(t *testing.T) {
	brokers, user, password := saslBrokers(t)
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			cfg := pipelinetest.Options(t, itest.UniqueName(t, "sasl"), brokers, config.Redis{}).Ingest
			cfg.SASL = config.SASL{Mechanism: mech, User: user, Password: password}
			f := ingest.New()
			if err := f.StartWith(context.Background(), cfg, logging.Discard(), metrics.New()); err != nil {
				t.Fatalf("start ingest with %s: %v", mech, err)
			}
			t.Cleanup(func() { f.Stop(context.Background()) })
			srv := httptest.NewServer(f)
			t.Cleanup(srv.Close)
			id := itest.UniqueName(t, "event")
			body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/sasl","type":"t"}`, id)
			resp, err := http.Post(srv.URL+"/", "application/cloudevents+json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("post over %s: %d", mech, resp.StatusCode)
			}
			base, err := kafka.NewConfig(cfg.Kafka)
			if err != nil {
				t.Fatal(err)
			}
			if ids := readIDs(t, brokers, base, cfg.Topic); ids[id] != 1 {
				t.Fatalf("read back over %s: event %s found %d times, want once (%d records)", mech, id, ids[id], len(ids))
			}
		})
	}
	for _, tc := range []struct {
		name string
		sasl config.SASL
		want string // in the error
	}{
		{"wrong password", config.SASL{Mechanism: "SCRAM-SHA-512", User: user, Password: password + "x"}, "SASL Authentication failed"},
		{"unknown user", config.SASL{Mechanism: "SCRAM-SHA-256", User: "nobody", Password: password}, "SASL Authentication failed"},
		{"wrong PLAIN password", config.SASL{Mechanism: "PLAIN", User: user, Password: password + "x"}, "SASL Authentication failed"},
		{"no SASL on the SASL listener", config.SASL{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := pipelinetest.Options(t, itest.UniqueName(t, "sasl"), brokers, config.Redis{}).Ingest
			cfg.SASL = tc.sasl
			cfg.DialTimeoutMS = 2000
			err := ingest.New().StartWith(context.Background(), cfg, logging.Discard(), metrics.New())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ingest start: %v, want an error with %q: the broker should have refused the connection", err, tc.want)
			}
		})
	}
}

// readIDs reads topic from the start to its high-water marks and counts the
// records per ce_id header.
func readIDs(t *testing.T, brokers []string, base *sarama.Config, topic string) map[string]int {
	t.Helper()
	client, err := sarama.NewClient(brokers, base)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, p := range parts {
		// A new topic's partitions get their leaders one by one: ask again, bounded.
		var hwm int64
		pipelinetest.Eventually(t, 30*time.Second, fmt.Sprintf("high-water mark of partition %d", p), func() (bool, string) {
			hwm, err = client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				_ = client.RefreshMetadata(topic)
				return false, err.Error()
			}
			return true, ""
		})
		if hwm == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(30 * time.Second)
	read:
		for {
			select {
			case m := <-pc.Messages():
				for _, h := range m.Headers {
					if string(h.Key) == "ce_id" {
						ids[string(h.Value)]++
					}
				}
				if m.Offset+1 >= hwm {
					break read
				}
			case <-timeout:
				t.Fatalf("partition %d: not read to its high-water mark %d within 30s", p, hwm)
			}
		}
		pc.Close()
	}
	return ids
}

// redisServer is a redis-server this test started, with a password, optionally
// serving TLS only.
type redisServer struct {
	addr     string
	password string
	caFile   string // set when TLS
}

// startRedis runs redis-server with requirepass (and with TLS when tls is set, on
// a certificate signed by a CA made here) and stops it when the test ends.
func startRedis(t *testing.T, tls bool) redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		itest.Missing(t, "redis-server is not installed (test/infra/redis.sh start installs it)")
	}
	dir := t.TempDir()
	pw := make([]byte, 12)
	rand.Read(pw)
	s := redisServer{password: hex.EncodeToString(pw)}
	port := freePort(t)
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	args := []string{"--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--requirepass", s.password}
	if tls {
		s.caFile = writeCerts(t, dir)
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server-key.pem"),
			"--tls-ca-cert-file", s.caFile, "--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", strconv.Itoa(port))
	}
	cmd := exec.Command(bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pipelinetest.Eventually(t, 15*time.Second, "redis-server listening", func() (bool, string) {
		c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil, fmt.Sprintf("%v; output: %s", err, out.String())
	})
	return s
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeCerts makes a CA and a server certificate for 127.0.0.1 in dir and returns
// the CA file.
func writeCerts(t *testing.T, dir string) string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tide test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srvKey)
	for name, block := range map[string]*pem.Block{
		"ca.pem":         {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem":     {Type: "CERTIFICATE", Bytes: srvDER},
		"server-key.pem": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "ca.pem")
}

// TestRedisAuthAndTLS connects the stores (store.Connect) and ingest's rate limiter
// to a redis-server that requires a password, over TCP and over TLS: the right
// settings work, a wrong password or a missing TLS setting is refused.
func TestRedisAuthAndTLS(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "password", true: "password+tls"}[tls], func(t *testing.T) {
			s := startRedis(t, tls)
			good := config.Redis{Addr: s.addr, Password: s.password}
			if tls {
				good.TLS = config.TLS{Enabled: true, CAFile: s.caFile}
			}
			ctx := context.Background()
			c, err := store.Connect(ctx, good)
			if err != nil {
				t.Fatalf("store.Connect with the right settings: %v", err)
			}
			c.Close()
			bad := map[string]config.Redis{"wrong password": good, "no password": good}
			wrong := bad["wrong password"]
			wrong.Password += "x"
			bad["wrong password"] = wrong
			none := bad["no password"]
			none.Password = ""
			bad["no password"] = none
			if tls {
				plain := good
				plain.TLS = config.TLS{}
				bad["no TLS"] = plain
				untrusted := good
				untrusted.TLS.CAFile = ""
				bad["server certificate not trusted"] = untrusted
			}
			for name, cfg := range bad {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if c, err := store.Connect(cctx, cfg); err == nil {
					c.Close()
					t.Errorf("store.Connect with %s: connected", name)
				}
				cancel()
			}

			// Ingest's rate limiter through the same settings: Redis decides (no
			// fallback) and a second request over the burst is refused.
			k, err := embedded.StartKafka(0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(k.Close)
			cfg := pipelinetest.Options(t, itest.UniqueName(t, "redis"), k.Brokers(), config.Redis{}).Ingest
			cfg.Redis = good
			cfg.Protection = ingest.Protection{RateLimit: true, RateLimitRate: 1, RateLimitBurst: 1, RateLimitPrefix: itest.UniqueName(t, "rl") + ":"}
			m := metrics.New()
			f := ingest.New()
			if err := f.StartWith(ctx, cfg, logging.Discard(), m); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Stop(context.Background()) })
			srv := httptest.NewServer(f)
			t.Cleanup(srv.Close)
			var codes []int
			for i := 0; i < 2; i++ {
				resp, err := http.Post(srv.URL+"/", "application/cloudevents+json",
					strings.NewReader(fmt.Sprintf(`{"specversion":"1.0","id":"%d","source":"/r","type":"t"}`, i)))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				codes = append(codes, resp.StatusCode)
			}
			if codes[0] != 202 || codes[1] != 429 {
				t.Fatalf("answers %v, want [202 429] (burst 1)", codes)
			}
			if g, n := testutil.ToFloat64(m.RateLimitFallback), testutil.ToFloat64(m.FallbackEvents.WithLabelValues("local")); g != 0 || n != 0 {
				t.Fatalf("the fallback decided (gauge %v, events %v): the limiter did not reach Redis", g, n)
			}
			// And the limiter with a wrong password does not reach it.
			opts, err := store.FastOptions(wrong, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opts)
			defer rdb.Close()
			l := ratelimit.New(rdb, ratelimit.Options{Default: ratelimit.Limit{Rate: 1, Burst: 1}, Log: logging.Discard()})
			if d, err := l.Allow(ctx, []ratelimit.Cost{{Key: "k", N: 1}}); err != nil || d.Fallback != ratelimit.FallbackLocal {
				t.Fatalf("limiter with a wrong password: %+v %v, want the local fallback", d, err)
			}
		})
	}
}
