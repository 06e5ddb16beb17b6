// A Go host for polysync plugins, over cgo and polysync_provider.h, as a
// scheduler written in Go (Argo, Kueue, an operator) would embed one:
// load a plugin, discover its entries, run one with parameters, watch the
// run to its end and print its outputs.
//
// Usage: gohost PLUGIN SETTINGS_JSON ENTRY [NAME=VALUE...]
// Prints one line per step: "manifest ...", "entry ...", "run ...",
// "status ...", "outputs {...}".
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

type parameter struct {
	Name      string  `json:"name"`
	Default   *string `json:"default"`
	Direction string  `json:"direction"`
}

type entry struct {
	ExternalID string      `json:"external_id"`
	Parameters []parameter `json:"parameters"`
}

type page struct {
	Entries       []entry `json:"entries"`
	NextPageToken *string `json:"next_page_token"`
}

type status struct {
	RunID       string            `json:"run_id"`
	State       string            `json:"state"`
	Reason      string            `json:"reason"`
	Outputs     map[string]string `json:"outputs"`
	OutputError string            `json:"output_error"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gohost: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 4 {
		fail("usage: gohost PLUGIN SETTINGS_JSON ENTRY [NAME=VALUE...]")
	}
	plugin, err := Load(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	var manifest struct {
		Name       string `json:"name"`
		APIVersion string `json:"api_version"`
	}
	if err := json.Unmarshal(plugin.Manifest(), &manifest); err != nil {
		fail("manifest: %v", err)
	}
	fmt.Printf("manifest %s api %s\n", manifest.Name, manifest.APIVersion)
	var settings map[string]any
	if err := json.Unmarshal([]byte(os.Args[2]), &settings); err != nil {
		fail("settings are not a JSON object: %v", err)
	}
	if err := plugin.Create(settings); err != nil {
		fail("%v", err)
	}
	defer plugin.Destroy()

	// Discover every page; find the entry.
	var found *entry
	var token *string
	for pages := 0; ; pages++ {
		body, err := plugin.Call(opDiscover, map[string]any{"page_token": token, "page_size": 100}, nil)
		if err != nil {
			fail("discover: %v", err)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			fail("discover page: %v", err)
		}
		for i := range p.Entries {
			if p.Entries[i].ExternalID == os.Args[3] {
				found = &p.Entries[i]
			}
		}
		if p.NextPageToken == nil {
			break
		}
		token = p.NextPageToken
	}
	if found == nil {
		fail("no entry %s", os.Args[3])
	}
	for _, p := range found.Parameters {
		fmt.Printf("entry %s parameter %s %s\n", found.ExternalID, p.Name, p.Direction)
	}

	params := map[string]string{}
	for _, kv := range os.Args[4:] {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			fail("parameter %q is not NAME=VALUE", kv)
		}
		params[name] = value
	}
	body, err := plugin.Call(opRun, map[string]any{
		"external_id":     found.ExternalID,
		"parameters":      params,
		"idempotency_key": fmt.Sprintf("gohost-%d", time.Now().UnixNano()),
	}, nil)
	if err != nil {
		fail("run: %v", err)
	}
	var handle struct {
		RunID string `json:"run_id"`
	}
	_ = json.Unmarshal(body, &handle)
	fmt.Printf("run %s\n", handle.RunID)

	var last status
	_, err = plugin.Call(opWatch, map[string]any{"run_ids": []string{handle.RunID}}, func(item []byte) {
		var s status
		if json.Unmarshal(item, &s) == nil {
			fmt.Printf("status %s %s\n", s.State, s.Reason)
			last = s
		}
	})
	if err != nil {
		fail("watch: %v", err)
	}
	outputs, _ := json.Marshal(last.Outputs)
	fmt.Printf("outputs %s\n", outputs)
	if last.OutputError != "" {
		fmt.Printf("output_error %s\n", last.OutputError)
	}
	if last.State != "Success" {
		os.Exit(3)
	}
}
