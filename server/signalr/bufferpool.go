package signalr

import "sync"

// bufferPool shares WebSocket write buffers between connections, so an idle
// connection holds none (websocket.BufferPool).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() any  { return b.p.Get() }
func (b *bufferPool) Put(v any) { b.p.Put(v) }
