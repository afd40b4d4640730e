package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is the Store of a deployment with several nodes: the Redis
// that carries the backplane also holds the tenants, the webhook endpoints
// and their queues, so any node serves the API and any node resumes the
// deliveries of one that stopped. It implements Leaser and TenantWatcher.
//
// Keys (Prefix "notifyhub:" by default; tenant ids cannot contain "/"):
//
//	tenants                 hash   tenant → Tenant JSON
//	webhooks                hash   webhook id → Webhook JSON
//	tenant-webhooks/<t>     set    webhook ids of tenant t
//	queue/<id>              list   pending Delivery JSON, oldest first
//	log/<id>                list   finished Delivery JSON, newest first
//	pending                 set    webhook ids whose queue is not empty
//	lease/<id>              string the node working the queue (expires)
//
// and the pub/sub channel "<Prefix>/control" (no tenant's backplane channel
// can have that name) announces deprovisioned tenants.
type RedisStore struct {
	client *redis.Client
	prefix string
	log    *slog.Logger
}

// RedisStoreOptions configure a RedisStore; URL is required.
type RedisStoreOptions struct {
	URL    string       // redis:// or rediss:// URL
	Prefix string       // key prefix; default "notifyhub:"
	Logger *slog.Logger // default slog.Default()
}

// NewRedisStore returns a store on the Redis at opts.URL. It connects
// lazily: a Redis that is down makes the calls fail, not the start.
func NewRedisStore(opts RedisStoreOptions) (*RedisStore, error) {
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		// The URL may hold a password: name the problem only.
		return nil, errors.New("invalid Redis URL (want redis://[:password@]host:port/db)")
	}
	if opts.Prefix == "" {
		opts.Prefix = "notifyhub:"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &RedisStore{client: redis.NewClient(ro), prefix: opts.Prefix, log: opts.Logger}, nil
}

func (s *RedisStore) key(parts ...string) string { return s.prefix + strings.Join(parts, "/") }

func (s *RedisStore) control() string { return s.prefix + "/control" }

// Close implements Store.
func (s *RedisStore) Close() error { return s.client.Close() }

func redisErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// ProvisionTenant implements Store.
func (s *RedisStore) ProvisionTenant(ctx context.Context, tenant string, now time.Time) (Tenant, bool, error) {
	t := Tenant{ID: tenant, ProvisionedAt: now.UTC()}
	raw, _ := json.Marshal(t)
	created, err := s.client.HSetNX(ctx, s.key("tenants"), tenant, raw).Result()
	if err != nil {
		return t, false, redisErr("provision tenant", err)
	}
	if created {
		return t, true, nil
	}
	t, _, err = s.Tenant(ctx, tenant)
	return t, false, err
}

// Tenant implements Store.
func (s *RedisStore) Tenant(ctx context.Context, tenant string) (Tenant, bool, error) {
	var t Tenant
	raw, err := s.client.HGet(ctx, s.key("tenants"), tenant).Bytes()
	if errors.Is(err, redis.Nil) {
		return t, false, nil
	}
	if err != nil {
		return t, false, redisErr("read tenant", err)
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return t, false, fmt.Errorf("decode stored tenant %q: %w", tenant, err)
	}
	return t, true, nil
}

// DeprovisionTenant implements Store. Every node watching the control
// channel is told, so that each closes the tenant's connections.
func (s *RedisStore) DeprovisionTenant(ctx context.Context, tenant string) (bool, []Webhook, error) {
	ws, err := s.Webhooks(ctx, tenant)
	if err != nil {
		return false, nil, err
	}
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, s.key("tenants"), tenant)
		for _, w := range ws {
			s.deleteWebhookCmds(ctx, p, w)
		}
		p.Del(ctx, s.key("tenant-webhooks", tenant))
		return nil
	})
	if err != nil {
		return false, nil, redisErr("deprovision tenant", err)
	}
	if err := s.client.Publish(ctx, s.control(), tenant).Err(); err != nil {
		return true, ws, redisErr("announce deprovisioning", err)
	}
	return true, ws, nil
}

func (s *RedisStore) deleteWebhookCmds(ctx context.Context, p redis.Pipeliner, w Webhook) {
	p.HDel(ctx, s.key("webhooks"), w.ID)
	p.SRem(ctx, s.key("tenant-webhooks", w.Tenant), w.ID)
	p.Del(ctx, s.key("queue", w.ID), s.key("log", w.ID), s.key("lease", w.ID))
	p.SRem(ctx, s.key("pending"), w.ID)
}

// WatchDeprovisioned implements TenantWatcher.
func (s *RedisStore) WatchDeprovisioned(ctx context.Context, fn func(tenant string)) error {
	ps := s.client.Subscribe(ctx, s.control())
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-ch:
			if !ok {
				return errors.New("the store's control subscription ended")
			}
			fn(m.Payload)
		}
	}
}

var createWebhookScript = redis.NewScript(`
local max = tonumber(ARGV[3])
if max > 0 and redis.call('SCARD', KEYS[1]) >= max then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1`)

// CreateWebhook implements Store.
func (s *RedisStore) CreateWebhook(ctx context.Context, w Webhook, maxPerTenant int) error {
	raw, err := json.Marshal(w)
	if err != nil {
		return err
	}
	ok, err := createWebhookScript.Run(ctx, s.client, []string{s.key("tenant-webhooks", w.Tenant), s.key("webhooks")}, w.ID, raw, maxPerTenant).Int()
	if err != nil {
		return redisErr("create webhook", err)
	}
	if ok == 0 {
		return fmt.Errorf("tenant %q has %d webhook endpoints: %w", w.Tenant, maxPerTenant, ErrLimit)
	}
	return nil
}

// Webhook implements Store.
func (s *RedisStore) Webhook(ctx context.Context, id string) (Webhook, bool, error) {
	var w Webhook
	raw, err := s.client.HGet(ctx, s.key("webhooks"), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return w, false, nil
	}
	if err != nil {
		return w, false, redisErr("read webhook", err)
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return w, false, fmt.Errorf("decode stored webhook %q: %w", id, err)
	}
	return w, true, nil
}

// Webhooks implements Store.
func (s *RedisStore) Webhooks(ctx context.Context, tenant string) ([]Webhook, error) {
	ids, err := s.client.SMembers(ctx, s.key("tenant-webhooks", tenant)).Result()
	if err != nil {
		return nil, redisErr("list webhooks", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	raws, err := s.client.HMGet(ctx, s.key("webhooks"), ids...).Result()
	if err != nil {
		return nil, redisErr("read webhooks", err)
	}
	out := make([]Webhook, 0, len(raws))
	for _, r := range raws {
		str, ok := r.(string)
		if !ok {
			continue // deleted meanwhile
		}
		var w Webhook
		if err := json.Unmarshal([]byte(str), &w); err != nil {
			return nil, fmt.Errorf("decode stored webhook: %w", err)
		}
		out = append(out, w)
	}
	sortWebhooks(out)
	return out, nil
}

// UpdateWebhook implements Store, with optimistic locking of the endpoints.
func (s *RedisStore) UpdateWebhook(ctx context.Context, id string, change func(*Webhook) error) (Webhook, error) {
	var w Webhook
	hash := s.key("webhooks")
	for range 20 {
		err := s.client.Watch(ctx, func(tx *redis.Tx) error {
			raw, err := tx.HGet(ctx, hash, id).Bytes()
			if errors.Is(err, redis.Nil) {
				return changeError{fmt.Errorf("webhook %q: %w", id, ErrNotFound)}
			}
			if err != nil {
				return err
			}
			w = Webhook{}
			if err := json.Unmarshal(raw, &w); err != nil {
				return fmt.Errorf("decode stored webhook %q: %w", id, err)
			}
			if err := change(&w); err != nil {
				return changeError{err}
			}
			out, err := json.Marshal(w)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, hash, id, out)
				return nil
			})
			return err
		}, hash)
		var ce changeError
		switch {
		case errors.Is(err, redis.TxFailedErr):
			continue
		case errors.As(err, &ce):
			return w, ce.err
		}
		return w, redisErr("update webhook", err)
	}
	return w, redisErr("update webhook", errors.New("too much contention"))
}

// changeError carries the caller's own error out of a transaction, to tell
// it from Redis failures.
type changeError struct{ err error }

func (e changeError) Error() string { return e.err.Error() }

// DeleteWebhook implements Store.
func (s *RedisStore) DeleteWebhook(ctx context.Context, id string) (bool, error) {
	w, found, err := s.Webhook(ctx, id)
	if err != nil || !found {
		return false, err
	}
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.deleteWebhookCmds(ctx, p, w)
		return nil
	})
	return true, redisErr("delete webhook", err)
}

var enqueueScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 0 then return -1 end
local max = tonumber(ARGV[1])
if max > 0 and redis.call('LLEN', KEYS[1]) >= max then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1`)

// Enqueue implements Store. Each delivery is appended by a script that
// checks the endpoint and its queue's length atomically; the scripts of
// one call go in one round trip.
func (s *RedisStore) Enqueue(ctx context.Context, ds []Delivery, max int) ([]string, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.Cmd, len(ds))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range ds {
			raw, err := json.Marshal(d)
			if err != nil {
				return err
			}
			// EVAL, not EVALSHA: a pipeline cannot fall back when Redis
			// does not have the script cached yet (after a restart).
			cmds[i] = enqueueScript.Eval(ctx, p, []string{s.key("queue", d.Webhook), s.key("pending"), s.key("webhooks")}, max, raw, d.Webhook)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr("enqueue deliveries", err)
	}
	var full []string
	for i, c := range cmds {
		if n, _ := c.Int(); n == 0 && !slices.Contains(full, ds[i].Webhook) {
			full = append(full, ds[i].Webhook)
		}
	}
	return full, nil
}

// Head implements Store.
func (s *RedisStore) Head(ctx context.Context, webhookID string) (Delivery, bool, error) {
	var d Delivery
	raw, err := s.client.LIndex(ctx, s.key("queue", webhookID), 0).Bytes()
	if errors.Is(err, redis.Nil) {
		return d, false, nil
	}
	if err != nil {
		return d, false, redisErr("read queue", err)
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, false, fmt.Errorf("decode queued delivery: %w", err)
	}
	return d, true, nil
}

var saveAttemptScript = redis.NewScript(`
local h = redis.call('LINDEX', KEYS[1], 0)
if not h or cjson.decode(h).id ~= ARGV[1] then return 0 end
redis.call('LSET', KEYS[1], 0, ARGV[2])
return 1`)

// SaveAttempt implements Store.
func (s *RedisStore) SaveAttempt(ctx context.Context, d Delivery) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return redisErr("save attempt", saveAttemptScript.Run(ctx, s.client, []string{s.key("queue", d.Webhook)}, d.ID, raw).Err())
}

var finishScript = redis.NewScript(`
local h = redis.call('LINDEX', KEYS[1], 0)
if not h or cjson.decode(h).id ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
redis.call('LPUSH', KEYS[2], ARGV[2])
local size = tonumber(ARGV[3])
if size > 0 then redis.call('LTRIM', KEYS[2], 0, size - 1) end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[4]) end
return 1`)

// Finish implements Store.
func (s *RedisStore) Finish(ctx context.Context, d Delivery, logSize int) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	keys := []string{s.key("queue", d.Webhook), s.key("log", d.Webhook), s.key("pending")}
	return redisErr("finish delivery", finishScript.Run(ctx, s.client, keys, d.ID, raw, logSize, d.Webhook).Err())
}

// FailPending implements Store, with optimistic locking of the queue so
// that a delivery enqueued meanwhile is not lost.
func (s *RedisStore) FailPending(ctx context.Context, webhookID, reason string, now time.Time, logSize int) (int, error) {
	queue, logKey := s.key("queue", webhookID), s.key("log", webhookID)
	n := 0
	for range 20 {
		err := s.client.Watch(ctx, func(tx *redis.Tx) error {
			raws, err := tx.LRange(ctx, queue, 0, -1).Result()
			if err != nil {
				return err
			}
			failed := make([]any, 0, len(raws))
			for _, r := range raws {
				var d Delivery
				if err := json.Unmarshal([]byte(r), &d); err != nil {
					return fmt.Errorf("decode queued delivery: %w", err)
				}
				d.Status, d.Error, d.FinishedAt, d.NextAttemptAt = DeliveryFailed, reason, now.UTC(), time.Time{}
				out, _ := json.Marshal(d)
				failed = append(failed, out)
			}
			n = len(failed)
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Del(ctx, queue)
				p.SRem(ctx, s.key("pending"), webhookID)
				if len(failed) > 0 {
					p.LPush(ctx, logKey, failed...)
					if logSize > 0 {
						p.LTrim(ctx, logKey, 0, int64(logSize-1))
					}
				}
				return nil
			})
			return err
		}, queue)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return n, redisErr("fail pending deliveries", err)
	}
	return 0, redisErr("fail pending deliveries", errors.New("too much contention"))
}

// Deliveries implements Store.
func (s *RedisStore) Deliveries(ctx context.Context, webhookID string, limit int) ([]Delivery, error) {
	pending, err := s.client.LRange(ctx, s.key("queue", webhookID), 0, -1).Result()
	if err != nil {
		return nil, redisErr("read queue", err)
	}
	slices.Reverse(pending)
	if len(pending) > limit {
		pending = pending[:limit]
	}
	var logged []string
	if rest := limit - len(pending); rest > 0 {
		if logged, err = s.client.LRange(ctx, s.key("log", webhookID), 0, int64(rest-1)).Result(); err != nil {
			return nil, redisErr("read delivery log", err)
		}
	}
	out := make([]Delivery, 0, len(pending)+len(logged))
	for _, r := range append(pending, logged...) {
		var d Delivery
		if err := json.Unmarshal([]byte(r), &d); err != nil {
			return nil, fmt.Errorf("decode delivery: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

// PendingWebhooks implements Store.
func (s *RedisStore) PendingWebhooks(ctx context.Context) ([]string, error) {
	ids, err := s.client.SMembers(ctx, s.key("pending")).Result()
	return ids, redisErr("list pending webhooks", err)
}

var leaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Lease implements Leaser.
func (s *RedisStore) Lease(ctx context.Context, webhookID, owner string, ttl time.Duration) (bool, error) {
	n, err := leaseScript.Run(ctx, s.client, []string{s.key("lease", webhookID)}, owner, ttl.Milliseconds()).Int()
	return n == 1, redisErr("lease webhook queue", err)
}

// Release implements Leaser.
func (s *RedisStore) Release(ctx context.Context, webhookID, owner string) error {
	return redisErr("release webhook queue", releaseScript.Run(ctx, s.client, []string{s.key("lease", webhookID)}, owner).Err())
}
