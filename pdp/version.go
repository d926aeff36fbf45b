package pdp

// Version is Gatehouse's version, stamped at build time with
// -ldflags "-X github.com/gatehouse-pdp/gatehouse/pdp.Version=v1.2.3".
var Version = "dev"
