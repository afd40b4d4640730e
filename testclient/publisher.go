package testclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Publisher posts notifications to a hub's internal publish API.
type Publisher struct {
	BaseURL string       // internal listener, e.g. http://127.0.0.1:8081
	Token   string       // publisher JWT
	HTTP    *http.Client // default http.DefaultClient
}

// PublishResult is the API's answer.
type PublishResult struct {
	Status   int
	Accepted int    `json:"accepted"`
	Error    string `json:"error"`
	Field    string `json:"field"`
}

// Publish posts body (marshalled to JSON unless it is already []byte) for tenant.
func (p *Publisher) Publish(ctx context.Context, tenant string, body any) (PublishResult, error) {
	var res PublishResult
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return res, fmt.Errorf("encode notifications: %w", err)
		}
	}
	u := p.BaseURL + "/internal/v1/tenants/" + url.PathEscape(tenant) + "/notifications"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(raw))
	if err != nil {
		return res, err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.Token)
	}
	hc := p.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return res, fmt.Errorf("publish: %w", err)
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return res, fmt.Errorf("read publish response: %w", err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return res, fmt.Errorf("publish response %d %q: %w", resp.StatusCode, data, err)
	}
	res.Status = resp.StatusCode
	return res, nil
}
