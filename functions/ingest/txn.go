package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/kafka"
)

// txnRoute sends the event types listed in TRANSACTIONAL_TYPES through a
// transactional publisher; every other type goes through the batching Publisher.
// The zero value routes everything to the Publisher.
type txnRoute struct {
	pub   *kafka.TxnPublisher
	types map[string]bool
}

// startTxn starts the transactional publisher when TRANSACTIONAL_TYPES lists types.
func (f *Function) startTxn(cfg Config, base *sarama.Config) error {
	if len(cfg.TransactionalTypes) == 0 {
		return nil
	}
	types := make(map[string]bool, len(cfg.TransactionalTypes))
	for _, t := range cfg.TransactionalTypes {
		types[strings.TrimSpace(t)] = true
	}
	id := kafka.TransactionalID(cfg.Kafka, cfg.Producer)
	p, err := kafka.NewTxnPublisher(cfg.Brokers, kafka.TxnProducerConfig(base, cfg.Producer, id), kafka.TxnOptions{
		Window:           cfg.BatchTimeout(),
		MaxRecords:       cfg.BatchSize,
		MaxBuffered:      cfg.MaxBuffered,
		MaxBufferedBytes: cfg.MaxBufferedBytes,
		AckTimeout:       cfg.AckTimeout(),
		OnAck:            f.onAck,
		Logger:           f.log,
	})
	if err != nil {
		return fmt.Errorf("TRANSACTIONAL_TYPES=%s (transactional.id %s): %w", strings.Join(cfg.TransactionalTypes, ","), id, err)
	}
	f.txn = txnRoute{pub: p, types: types}
	return nil
}

// routed is a request's records split by publisher: the transactional types'
// records and the others.
type routed struct {
	plain, critical []*sarama.ProducerMessage
}

// route splits msgs, where msgs[i] encodes events[i], by publisher.
func (f *Function) route(events []event.Event, msgs []*sarama.ProducerMessage) routed {
	if f.txn.pub == nil {
		return routed{plain: msgs}
	}
	var rs routed
	for i := range events {
		if f.txn.types[events[i].Type()] {
			rs.critical = append(rs.critical, msgs[i])
		} else {
			rs.plain = append(rs.plain, msgs[i])
		}
	}
	return rs
}

// send publishes rs: the transactional types in a Kafka transaction, the others
// through the batching publisher, both at once. It returns when both paths have
// answered, with every error, so the request is acknowledged only when all its
// events are durable (and committed).
//
// Per-key order holds within each path; an event of a transactional type and one of
// another type under the same key may land in either order.
func (f *Function) send(ctx context.Context, rs routed) error {
	switch {
	case len(rs.critical) == 0:
		return f.pub.Publish(ctx, rs.plain)
	case len(rs.plain) == 0:
		return f.txn.pub.Publish(ctx, rs.critical)
	}
	txnErr := make(chan error, 1)
	go func() { txnErr <- f.txn.pub.Publish(ctx, rs.critical) }()
	err := f.pub.Publish(ctx, rs.plain)
	return errors.Join(err, <-txnErr)
}

// closeTxn finishes the transactions already accepted and closes the producer.
func (f *Function) closeTxn(ctx context.Context) error {
	if f.txn.pub == nil {
		return nil
	}
	return f.txn.pub.Close(ctx)
}

// TxnStats counts the transactions of the transactional publisher (zero when
// TRANSACTIONAL_TYPES is empty).
func (f *Function) TxnStats() kafka.TxnStats {
	if f.txn.pub == nil {
		return kafka.TxnStats{}
	}
	return f.txn.pub.Stats()
}
