// Package signalr is the ASP.NET Core SignalR wire layer: the handshake, the hub
// message types, the JSON and MessagePack hub protocols with their framing,
// negotiation and the transports that carry frames between a client and a
// transport-neutral Conn. It knows nothing about notifications or tenants: a
// Handler turns a Conn's incoming invocations into application calls, and
// applications push pre-encoded frames into a Conn's bounded queue.
//
// The wire rules follow dotnet/aspnetcore src/SignalR/docs/specs and what the
// official JavaScript, .NET and Java clients actually send and accept.
package signalr
