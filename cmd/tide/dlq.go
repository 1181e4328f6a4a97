package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/kafka"
)

func init() {
	register(command{name: "dlq", summary: "list dead letters, or re-drive chosen ones to the events topic (list | redrive)", run: func(ctx context.Context, args []string) error {
		return runDLQ(ctx, os.Stdout, args)
	}})
}

const dlqUsage = `usage:
  tide dlq list    [flags]          list dead letters (filters narrow the list)
  tide dlq redrive -offset N[,P:N]  re-publish the chosen dead letters to the events topic
  tide dlq redrive -all [filters]   re-publish every dead letter the filters select

A re-driven record is the original event as it was (key, value, timestamp, ce_
headers) without the tide_dlq_* headers. The consumers deduplicate by (source, id),
so re-driving an event twice, or one that was handled meanwhile, has no second effect.`

// dlqFlags are the flags both subcommands share.
type dlqFlags struct {
	brokers, topic, to              string
	offsets, typ, source, id, group string
	errContains                     string
	timeout                         time.Duration
}

func (f *dlqFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.brokers, "brokers", os.Getenv("KAFKA_BROKERS"), "comma-separated bootstrap brokers (env KAFKA_BROKERS)")
	fs.StringVar(&f.topic, "topic", envOr("KAFKA_DLQ_TOPIC", "events-dlq"), "dead-letter topic (env KAFKA_DLQ_TOPIC)")
	fs.StringVar(&f.offsets, "offset", "", "comma-separated dead-letter offsets, OFFSET or PARTITION:OFFSET")
	fs.StringVar(&f.typ, "type", "", "only dead letters of this event type")
	fs.StringVar(&f.source, "source", "", "only dead letters of this event source")
	fs.StringVar(&f.id, "id", "", "only the dead letter(s) of this event id")
	fs.StringVar(&f.group, "group", "", "only dead letters of this consumer group")
	fs.StringVar(&f.errContains, "error", "", "only dead letters whose error contains this text")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "longest the command waits for Kafka")
}

func (f *dlqFlags) filter() (kafka.DeadLetterFilter, error) {
	offs, err := kafka.ParseDLQOffsets(f.offsets)
	if err != nil {
		return kafka.DeadLetterFilter{}, fmt.Errorf("%w: -offset: %v", errUsage, err)
	}
	return kafka.DeadLetterFilter{Offsets: offs, Type: f.typ, Source: f.source, ID: f.id, Group: f.group, ErrorContains: f.errContains}, nil
}

// kafkaConfig is the Kafka configuration from the environment (TLS, SASL, version),
// with the brokers from -brokers.
func (f *dlqFlags) kafkaConfig() (config.Kafka, *sarama.Config, error) {
	var k config.Kafka
	if err := config.Load("", &k); err != nil {
		return k, nil, err
	}
	k.Brokers = nil
	for _, b := range strings.Split(f.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			k.Brokers = append(k.Brokers, b)
		}
	}
	if len(k.Brokers) == 0 {
		return k, nil, fmt.Errorf("%w: no brokers: set -brokers or KAFKA_BROKERS (tide run prints the embedded broker's address)", errUsage)
	}
	c, err := kafka.NewConfig(k)
	return k, c, err
}

func runDLQ(ctx context.Context, w io.Writer, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "redrive") {
		fmt.Fprintln(os.Stderr, dlqUsage)
		return fmt.Errorf("%w: dlq takes list or redrive", errUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	var f dlqFlags
	f.register(fs)
	asJSON := fs.Bool("json", false, "list: one JSON object per dead letter")
	all := fs.Bool("all", false, "redrive: re-drive every dead letter the filters select (required without -offset)")
	dryRun := fs.Bool("dry-run", false, "redrive: list what would be re-driven, publish nothing")
	fs.StringVar(&f.to, "to", envOr("KAFKA_TOPIC", "events"), "redrive: topic to re-publish to (env KAFKA_TOPIC)")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	filter, err := f.filter()
	if err != nil {
		return err
	}
	if sub == "redrive" && len(filter.Offsets) == 0 && !*all {
		return fmt.Errorf("%w: redrive needs -offset, or -all to re-drive every dead letter the filters select", errUsage)
	}
	k, sc, err := f.kafkaConfig()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	client, err := sarama.NewClient(k.Brokers, sc)
	if err != nil {
		return fmt.Errorf("connect to %v: %w", k.Brokers, err)
	}
	defer client.Close()
	dls, err := kafka.ReadDeadLetters(ctx, client, f.topic, filter)
	if err != nil {
		return err
	}
	if sub == "list" || *dryRun {
		return printDeadLetters(w, dls, *asJSON)
	}
	// Idempotent, acks=all and murmur2-partitioned like ingest, so a re-driven event
	// lands on its key's partition.
	producer, err := sarama.NewSyncProducer(k.Brokers, kafka.ProducerConfig(sc, config.Producer{BatchSize: 1000, BatchTimeoutMS: 5}))
	if err != nil {
		return fmt.Errorf("re-drive producer: %w", err)
	}
	defer producer.Close()
	if err := kafka.Redrive(producer, f.to, dls); err != nil {
		return err
	}
	fmt.Fprintf(w, "re-drove %d dead letter(s) from %s to %s\n", len(dls), f.topic, f.to)
	return nil
}

func printDeadLetters(w io.Writer, dls []kafka.DeadLetter, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, d := range dls {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DLQ\tORIGINAL\tGROUP\tATTEMPTS\tEVENT ID\tTYPE\tSOURCE\tTIME\tERROR")
	for _, d := range dls {
		fmt.Fprintf(tw, "%d:%d\t%s/%d@%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n",
			d.Partition, d.Offset, d.OriginalTopic, d.OriginalPartition, d.OriginalOffset, d.Group, d.Attempts,
			d.EventID, d.EventType, d.EventSource, d.Time.Format(time.RFC3339), oneLine(d.Error, 120))
	}
	fmt.Fprintf(tw, "%d dead letter(s)\n", len(dls))
	return tw.Flush()
}

// oneLine keeps an error on one table row.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	return s
}
