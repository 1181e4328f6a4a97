// Command baseline is the ingest a user would write without tide, for the benchmark
// to measure tide against: the CloudEvents sdk-go HTTP receiver, sending each event
// it receives to Kafka with the sdk-go kafka_sarama sender (a sarama SyncProducer),
// and answering only once Kafka acknowledged it. The producer has the settings tide's
// has where they matter for safety (acks=all, idempotent, so one request in flight
// per broker); everything else is sarama's and sdk-go's defaults, as in sdk-go's own
// Kafka samples. Single events only: sdk-go's HTTP receiver has no batch mode.
//
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./test/bench/baseline -addr 127.0.0.1:8090 -topic bench-baseline
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "HTTP listen address (loopback)")
	topic := flag.String("topic", "bench-baseline", "Kafka topic")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, strings.Split(os.Getenv("KAFKA_BROKERS"), ","), *addr, *topic); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, brokers []string, addr, topic string) error {
	if len(brokers) == 0 || brokers[0] == "" {
		return errors.New("KAFKA_BROKERS is not set")
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1 // sarama refuses an idempotent producer without it

	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		return fmt.Errorf("kafka admin: %w", err)
	}
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 6, ReplicationFactor: 1}, false)
	_ = admin.Close()
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		var te *sarama.TopicError
		if !errors.As(err, &te) || te.Err != sarama.ErrTopicAlreadyExists {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}

	sender, err := kafka_sarama.NewSender(brokers, cfg, topic)
	if err != nil {
		return fmt.Errorf("kafka sender: %w", err)
	}
	defer sender.Close(context.Background())
	toKafka, err := cloudevents.NewClient(sender, cloudevents.WithTimeNow(), cloudevents.WithUUIDs())
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	fromHTTP, err := cloudevents.NewClientHTTP(cehttp.WithListener(ln))
	if err != nil {
		return fmt.Errorf("http receiver: %w", err)
	}
	slog.Info("baseline receiving", "addr", ln.Addr().String(), "topic", topic, "brokers", brokers)
	return fromHTTP.StartReceiver(ctx, func(ctx context.Context, e event.Event) protocol.Result {
		// Keyed by subject, as tide keys (PARTITION_KEY_ATTRIBUTE=subject).
		kctx := kafka_sarama.WithMessageKey(ctx, sarama.StringEncoder(e.Subject()))
		if res := toKafka.Send(kctx, e); !cloudevents.IsACK(res) {
			return res
		}
		return nil
	})
}
