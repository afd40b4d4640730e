package notify

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the bolt file. Records are JSON; queue and log keys are
// big-endian sequence numbers, so that cursors walk them in order.
var (
	bucketTenants        = []byte("tenants")         // tenant → Tenant
	bucketWebhooks       = []byte("webhooks")        // webhook id → Webhook
	bucketTenantWebhooks = []byte("tenant_webhooks") // tenant → {webhook id → ""}
	bucketQueues         = []byte("queues")          // webhook id → {seq → Delivery}
	bucketQueueLens      = []byte("queue_lens")      // webhook id → uint64
	bucketLogs           = []byte("logs")            // webhook id → {seq → Delivery}
)

// BoltStore is the embedded Store: one bbolt file, for one node. The file
// is created on the first write, so a hub that never provisions a tenant or
// registers a webhook leaves nothing behind; when it exists it is opened at
// once, so pending deliveries resume after a restart. bbolt locks the file:
// a second process that opens it waits, then fails.
type BoltStore struct {
	path string

	mu     sync.Mutex
	db     *bolt.DB // nil until opened
	closed bool
}

// NewBoltStore returns the store of the file at path, opening it now if it
// exists.
func NewBoltStore(path string) (*BoltStore, error) {
	s := &BoltStore{path: path}
	if _, err := os.Stat(path); err == nil {
		if _, err := s.open(true); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return s, nil
}

// open returns the database, opening (and with create, creating) the file
// on first use. Without create and without a file it returns nil: reads of
// a store that was never written find nothing.
func (s *BoltStore) open(create bool) (*bolt.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("the store is closed")
	}
	if s.db != nil {
		return s.db, nil
	}
	if !create {
		// NewBoltStore opened the file if it existed, and only this process
		// (which holds the lock once it opens it) creates it: there is
		// nothing to read. No stat here: reads run on every publish.
		return nil, nil
	}
	if dir := filepath.Dir(s.path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create the store's directory: %w", err)
		}
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: the file is locked by another process", s.path)
		}
		return nil, fmt.Errorf("open store %s: %w", s.path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketTenants, bucketWebhooks, bucketTenantWebhooks, bucketQueues, bucketQueueLens, bucketLogs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise store %s: %w", s.path, err)
	}
	s.db = db
	return db, nil
}

// view runs fn in a read transaction; it does nothing while there is no file.
func (s *BoltStore) view(fn func(*bolt.Tx) error) error {
	db, err := s.open(false)
	if err != nil || db == nil {
		return err
	}
	return db.View(fn)
}

// update runs fn in a write transaction. Concurrent updates are committed
// together (one fsync), which keeps the publish path cheap under load; fn
// may therefore run more than once and must not have side effects outside tx.
func (s *BoltStore) update(fn func(*bolt.Tx) error) error {
	db, err := s.open(true)
	if err != nil {
		return err
	}
	return db.Batch(fn)
}

// Close implements Store.
func (s *BoltStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decode stored %s: %w", key, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// ProvisionTenant implements Store.
func (s *BoltStore) ProvisionTenant(_ context.Context, tenant string, now time.Time) (t Tenant, created bool, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTenants)
		found, err := getJSON(b, []byte(tenant), &t)
		if err != nil || found {
			created = false
			return err
		}
		t, created = Tenant{ID: tenant, ProvisionedAt: now.UTC()}, true
		return putJSON(b, []byte(tenant), t)
	})
	return t, created, err
}

// Tenant implements Store.
func (s *BoltStore) Tenant(_ context.Context, tenant string) (t Tenant, found bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		found, err = getJSON(tx.Bucket(bucketTenants), []byte(tenant), &t)
		return err
	})
	return t, found, err
}

// DeprovisionTenant implements Store.
func (s *BoltStore) DeprovisionTenant(_ context.Context, tenant string) (existed bool, deleted []Webhook, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		existed, deleted = false, nil
		tenants := tx.Bucket(bucketTenants)
		existed = tenants.Get([]byte(tenant)) != nil
		if err := tenants.Delete([]byte(tenant)); err != nil {
			return err
		}
		ids := tx.Bucket(bucketTenantWebhooks).Bucket([]byte(tenant))
		if ids == nil {
			return nil
		}
		var keys [][]byte
		_ = ids.ForEach(func(k, _ []byte) error { keys = append(keys, slices.Clone(k)); return nil })
		for _, id := range keys {
			var w Webhook
			if found, err := getJSON(tx.Bucket(bucketWebhooks), id, &w); err != nil {
				return err
			} else if found {
				deleted = append(deleted, w)
			}
			if err := deleteWebhookTx(tx, tenant, id); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketTenantWebhooks).DeleteBucket([]byte(tenant))
	})
	return existed, deleted, err
}

// deleteWebhookTx deletes an endpoint, its queue and its log.
func deleteWebhookTx(tx *bolt.Tx, tenant string, id []byte) error {
	if err := tx.Bucket(bucketWebhooks).Delete(id); err != nil {
		return err
	}
	if ids := tx.Bucket(bucketTenantWebhooks).Bucket([]byte(tenant)); ids != nil {
		if err := ids.Delete(id); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bucketQueues, bucketLogs} {
		if err := tx.Bucket(name).DeleteBucket(id); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
	}
	return tx.Bucket(bucketQueueLens).Delete(id)
}

// CreateWebhook implements Store.
func (s *BoltStore) CreateWebhook(_ context.Context, w Webhook, maxPerTenant int) error {
	return s.update(func(tx *bolt.Tx) error {
		ids, err := tx.Bucket(bucketTenantWebhooks).CreateBucketIfNotExists([]byte(w.Tenant))
		if err != nil {
			return err
		}
		if maxPerTenant > 0 && ids.Stats().KeyN >= maxPerTenant {
			return fmt.Errorf("tenant %q has %d webhook endpoints: %w", w.Tenant, maxPerTenant, ErrLimit)
		}
		if err := ids.Put([]byte(w.ID), nil); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketWebhooks), []byte(w.ID), w)
	})
}

// Webhook implements Store.
func (s *BoltStore) Webhook(_ context.Context, id string) (w Webhook, found bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		found, err = getJSON(tx.Bucket(bucketWebhooks), []byte(id), &w)
		return err
	})
	return w, found, err
}

// Webhooks implements Store.
func (s *BoltStore) Webhooks(_ context.Context, tenant string) (out []Webhook, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bucketTenantWebhooks).Bucket([]byte(tenant))
		if ids == nil {
			return nil
		}
		all := tx.Bucket(bucketWebhooks)
		return ids.ForEach(func(id, _ []byte) error {
			var w Webhook
			if found, err := getJSON(all, id, &w); err != nil || !found {
				return err
			}
			out = append(out, w)
			return nil
		})
	})
	sortWebhooks(out)
	return out, err
}

// sortWebhooks orders endpoints oldest first (ids break ties).
func sortWebhooks(ws []Webhook) {
	slices.SortFunc(ws, func(a, b Webhook) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// UpdateWebhook implements Store.
func (s *BoltStore) UpdateWebhook(_ context.Context, id string, change func(*Webhook) error) (w Webhook, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWebhooks)
		w = Webhook{}
		found, err := getJSON(b, []byte(id), &w)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("webhook %q: %w", id, ErrNotFound)
		}
		if err := change(&w); err != nil {
			return err
		}
		return putJSON(b, []byte(id), w)
	})
	return w, err
}

// DeleteWebhook implements Store.
func (s *BoltStore) DeleteWebhook(_ context.Context, id string) (found bool, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		var w Webhook
		if found, err = getJSON(tx.Bucket(bucketWebhooks), []byte(id), &w); err != nil || !found {
			return err
		}
		return deleteWebhookTx(tx, w.Tenant, []byte(id))
	})
	return found, err
}

func queueLen(tx *bolt.Tx, id []byte) uint64 {
	if v := tx.Bucket(bucketQueueLens).Get(id); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func setQueueLen(tx *bolt.Tx, id []byte, n uint64) error {
	if n == 0 {
		return tx.Bucket(bucketQueueLens).Delete(id)
	}
	return tx.Bucket(bucketQueueLens).Put(id, seqKey(n))
}

// Enqueue implements Store.
func (s *BoltStore) Enqueue(_ context.Context, ds []Delivery, max int) (full []string, err error) {
	if len(ds) == 0 {
		return nil, nil
	}
	err = s.update(func(tx *bolt.Tx) error {
		full = nil
		for _, d := range ds {
			id := []byte(d.Webhook)
			if tx.Bucket(bucketWebhooks).Get(id) == nil {
				continue // deleted meanwhile
			}
			n := queueLen(tx, id)
			if max > 0 && n >= uint64(max) {
				if !slices.Contains(full, d.Webhook) {
					full = append(full, d.Webhook)
				}
				continue
			}
			q, err := tx.Bucket(bucketQueues).CreateBucketIfNotExists(id)
			if err != nil {
				return err
			}
			seq, err := q.NextSequence()
			if err != nil {
				return err
			}
			if err := putJSON(q, seqKey(seq), d); err != nil {
				return err
			}
			if err := setQueueLen(tx, id, n+1); err != nil {
				return err
			}
		}
		return nil
	})
	return full, err
}

// Head implements Store.
func (s *BoltStore) Head(_ context.Context, webhookID string) (d Delivery, found bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket([]byte(webhookID))
		if q == nil {
			return nil
		}
		k, v := q.Cursor().First()
		if k == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &d)
	})
	return d, found, err
}

// headKey returns the key of the head of an endpoint's queue if it is d.
func headKey(tx *bolt.Tx, d Delivery) (*bolt.Bucket, []byte, error) {
	q := tx.Bucket(bucketQueues).Bucket([]byte(d.Webhook))
	if q == nil {
		return nil, nil, nil
	}
	k, v := q.Cursor().First()
	if k == nil {
		return nil, nil, nil
	}
	var head Delivery
	if err := json.Unmarshal(v, &head); err != nil {
		return nil, nil, fmt.Errorf("decode queued delivery: %w", err)
	}
	if head.ID != d.ID {
		return nil, nil, nil // gone meanwhile (endpoint disabled or deleted)
	}
	return q, slices.Clone(k), nil
}

// SaveAttempt implements Store.
func (s *BoltStore) SaveAttempt(_ context.Context, d Delivery) error {
	return s.update(func(tx *bolt.Tx) error {
		q, k, err := headKey(tx, d)
		if err != nil || q == nil {
			return err
		}
		return putJSON(q, k, d)
	})
}

// Finish implements Store.
func (s *BoltStore) Finish(_ context.Context, d Delivery, logSize int) error {
	return s.update(func(tx *bolt.Tx) error {
		q, k, err := headKey(tx, d)
		if err != nil || q == nil {
			return err
		}
		if err := q.Delete(k); err != nil {
			return err
		}
		id := []byte(d.Webhook)
		if n := queueLen(tx, id); n > 0 {
			if err := setQueueLen(tx, id, n-1); err != nil {
				return err
			}
		}
		return appendLog(tx, id, []Delivery{d}, logSize)
	})
}

// appendLog adds finished deliveries to an endpoint's log and drops the
// oldest entries beyond logSize.
func appendLog(tx *bolt.Tx, id []byte, ds []Delivery, logSize int) error {
	l, err := tx.Bucket(bucketLogs).CreateBucketIfNotExists(id)
	if err != nil {
		return err
	}
	for _, d := range ds {
		seq, err := l.NextSequence()
		if err != nil {
			return err
		}
		if err := putJSON(l, seqKey(seq), d); err != nil {
			return err
		}
	}
	if logSize <= 0 {
		return nil
	}
	excess := l.Stats().KeyN - logSize
	c := l.Cursor()
	for k, _ := c.First(); k != nil && excess > 0; k, _ = c.First() {
		if err := l.Delete(k); err != nil {
			return err
		}
		excess--
	}
	return nil
}

// FailPending implements Store.
func (s *BoltStore) FailPending(_ context.Context, webhookID, reason string, now time.Time, logSize int) (n int, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		n = 0
		id := []byte(webhookID)
		q := tx.Bucket(bucketQueues).Bucket(id)
		if q == nil {
			return nil
		}
		var failed []Delivery
		err := q.ForEach(func(_, v []byte) error {
			var d Delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode queued delivery: %w", err)
			}
			d.Status, d.Error, d.FinishedAt = DeliveryFailed, reason, now.UTC()
			d.NextAttemptAt = time.Time{}
			failed = append(failed, d)
			return nil
		})
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketQueues).DeleteBucket(id); err != nil {
			return err
		}
		if err := setQueueLen(tx, id, 0); err != nil {
			return err
		}
		n = len(failed)
		return appendLog(tx, id, failed, logSize)
	})
	return n, err
}

// Deliveries implements Store.
func (s *BoltStore) Deliveries(_ context.Context, webhookID string, limit int) (out []Delivery, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		out = nil
		for _, name := range [][]byte{bucketQueues, bucketLogs} {
			b := tx.Bucket(name).Bucket([]byte(webhookID))
			if b == nil {
				continue
			}
			c := b.Cursor()
			for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
				var d Delivery
				if err := json.Unmarshal(v, &d); err != nil {
					return fmt.Errorf("decode delivery: %w", err)
				}
				out = append(out, d)
			}
		}
		return nil
	})
	return out, err
}

// PendingWebhooks implements Store.
func (s *BoltStore) PendingWebhooks(context.Context) (ids []string, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQueueLens).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return ids, err
}
