// A mutating admission webhook on the standard library alone: it annotates each object
// with "webhook-dev.io/answered-by: go-<Version>" and warns with Version. Used by
// webhook-dev's tests and its Go example (docs/languages/go.md).
package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
)

const annotation = "webhook-dev.io/answered-by"

type review struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Request    *request  `json:"request,omitempty"`
	Response   *response `json:"response,omitempty"`
}

type request struct {
	UID    string          `json:"uid"`
	Object json.RawMessage `json:"object"`
}

type response struct {
	UID       string   `json:"uid"`
	Allowed   bool     `json:"allowed"`
	Warnings  []string `json:"warnings,omitempty"`
	Patch     string   `json:"patch,omitempty"`
	PatchType string   `json:"patchType,omitempty"`
}

type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

func mutate(w http.ResponseWriter, r *http.Request) {
	var in review
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	var object struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(in.Request.Object, &object)
	value := "go-" + Version
	op := patchOp{"add", "/metadata/annotations", map[string]string{annotation: value}}
	if object.Metadata.Annotations != nil {
		escaped := strings.ReplaceAll(strings.ReplaceAll(annotation, "~", "~0"), "/", "~1")
		op = patchOp{"add", "/metadata/annotations/" + escaped, value}
	}
	patch, _ := json.Marshal([]patchOp{op})
	out := review{
		APIVersion: in.APIVersion,
		Kind:       "AdmissionReview",
		Response: &response{
			UID:       in.Request.UID,
			Allowed:   true,
			Warnings:  []string{Version},
			Patch:     base64.StdEncoding.EncodeToString(patch),
			PatchType: "JSONPatch",
		},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func main() {
	port := flag.Int("port", 9443, "port on 127.0.0.1")
	cert := flag.String("cert", "", "serving certificate (PEM); plain HTTP without it")
	key := flag.String("key", "", "its private key (PEM)")
	flag.Parse()
	http.HandleFunc("/mutate", mutate)
	address := fmt.Sprintf("127.0.0.1:%d", *port)
	log.Printf("webhook %s (pid %d) listening on %s", Version, os.Getpid(), address)
	var err error
	if *cert != "" {
		err = http.ListenAndServeTLS(address, *cert, *key, nil)
	} else {
		err = http.ListenAndServe(address, nil)
	}
	log.Fatal(err)
}
