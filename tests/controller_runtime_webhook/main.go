// A mutating admission webhook on controller-runtime's webhook server, as a kubebuilder
// project serves it: TLS from tls.crt/tls.key in its cert dir, refusing to start without
// them. It annotates each object with "webhook-dev.io/answered-by: go-<Version>" and warns
// with Version. Used by webhook-dev's tests and its kubebuilder recipe
// (docs/recipes/kubebuilder.md).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

const annotation = "webhook-dev.io/answered-by"

func mutate(_ context.Context, req admission.Request) admission.Response {
	var object map[string]any
	if err := json.Unmarshal(req.Object.Raw, &object); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	metadata, _ := object["metadata"].(map[string]any)
	if metadata == nil {
		metadata = map[string]any{}
		object["metadata"] = metadata
	}
	annotations, _ := metadata["annotations"].(map[string]any)
	if annotations == nil {
		annotations = map[string]any{}
		metadata["annotations"] = annotations
	}
	annotations[annotation] = "go-" + Version
	mutated, err := json.Marshal(object)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	response := admission.PatchResponseFromRaw(req.Object.Raw, mutated)
	response.Warnings = []string{Version}
	return response
}

func main() {
	port := flag.Int("port", 9443, "port on 127.0.0.1")
	certDir := flag.String("cert-dir", "/tmp/k8s-webhook-server/serving-certs", "tls.crt and tls.key")
	flag.Parse()
	log.SetLogger(zap.New())

	server := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: *port, CertDir: *certDir})
	server.Register("/mutate", &webhook.Admission{Handler: admission.HandlerFunc(mutate)})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Start(ctx); err != nil {
		log.Log.Error(err, "webhook server stopped")
		os.Exit(1)
	}
}
