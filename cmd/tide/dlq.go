package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
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
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(os.Stderr, dlqUsage)
		return flag.ErrHelp
	}
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
	// Read what the offsets select, then check each named offset is there before the
	// other filters narrow it down, so a mistyped offset is an error, not an empty
	// list or a re-drive of nothing.
	dls, err := kafka.ReadDeadLetters(ctx, client, f.topic, kafka.DeadLetterFilter{Offsets: filter.Offsets})
	if err != nil {
		return err
	}
	if len(filter.Offsets) > 0 {
		if missing := missingOffsets(filter.Offsets, dls); len(missing) > 0 {
			return noSuchDeadLetters(f.topic, missing, topicOffsets(client, f.topic))
		}
	}
	var selected []kafka.DeadLetter
	for _, d := range dls {
		if filter.Match(d) {
			selected = append(selected, d)
		}
	}
	if len(filter.Offsets) > 0 && len(selected) < len(dls) {
		return errors.New(filteredOut(filter, dls, selected))
	}
	dls = selected
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

// missingOffsets returns the offsets of want that no dead letter of found is at.
func missingOffsets(want []kafka.DLQOffset, found []kafka.DeadLetter) []kafka.DLQOffset {
	var missing []kafka.DLQOffset
	for _, o := range want {
		ok := false
		for _, d := range found {
			if d.Offset == o.Offset && (o.Partition < 0 || o.Partition == d.Partition) {
				ok = true
				break
			}
		}
		if !ok {
			missing = append(missing, o)
		}
	}
	return missing
}

// offsetRange is the offsets a partition holds: [start, end).
type offsetRange struct{ start, end int64 }

// topicOffsets returns each partition's range of offsets, for an error message:
// nil when they cannot be read.
func topicOffsets(client sarama.Client, topic string) map[int32]offsetRange {
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil
	}
	out := map[int32]offsetRange{}
	for _, p := range parts {
		start, err1 := client.GetOffset(topic, p, sarama.OffsetOldest)
		end, err2 := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err1 != nil || err2 != nil {
			return nil
		}
		out[p] = offsetRange{start, end}
	}
	return out
}

// noSuchDeadLetters says which of the named dead letters do not exist, and what
// the topic holds instead.
func noSuchDeadLetters(topic string, missing []kafka.DLQOffset, ranges map[int32]offsetRange) error {
	names := make([]string, len(missing))
	for i, o := range missing {
		names[i] = fmt.Sprintf("offset %d", o.Offset)
		if o.Partition >= 0 {
			names[i] = fmt.Sprintf("partition %d offset %d", o.Partition, o.Offset)
			if _, ok := ranges[o.Partition]; !ok && ranges != nil {
				names[i] = fmt.Sprintf("partition %d (no such partition)", o.Partition)
			}
		}
	}
	msg := fmt.Sprintf("no dead letter at %s in %s", strings.Join(names, ", "), topic)
	if ranges != nil {
		parts := make([]int32, 0, len(ranges))
		for p := range ranges {
			parts = append(parts, p)
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		var holds []string
		for _, p := range parts {
			if r := ranges[p]; r.end > r.start {
				holds = append(holds, fmt.Sprintf("partition %d holds offsets %d-%d", p, r.start, r.end-1))
			}
		}
		if len(holds) == 0 {
			msg += " (the topic holds no dead letter)"
		} else {
			msg += " (" + strings.Join(holds, "; ") + "; `tide dlq list` shows them)"
		}
	}
	return errors.New(msg)
}

// filteredOut says which dead letters the offsets named but the other filters left
// out: asked for by offset, they are not silently skipped.
func filteredOut(f kafka.DeadLetterFilter, named, selected []kafka.DeadLetter) string {
	kept := map[[2]int64]bool{}
	for _, d := range selected {
		kept[[2]int64{int64(d.Partition), d.Offset}] = true
	}
	var out []string
	for _, d := range named {
		if !kept[[2]int64{int64(d.Partition), d.Offset}] {
			out = append(out, fmt.Sprintf("%d:%d", d.Partition, d.Offset))
		}
	}
	var filters []string
	for _, kv := range [][2]string{{"-type", f.Type}, {"-source", f.Source}, {"-id", f.ID}, {"-group", f.Group}, {"-error", f.ErrorContains}} {
		if kv[1] != "" {
			filters = append(filters, fmt.Sprintf("%s %q", kv[0], kv[1]))
		}
	}
	return fmt.Sprintf("dead letter(s) %s do not match %s (drop -offset or the filter)", strings.Join(out, ", "), strings.Join(filters, " "))
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
