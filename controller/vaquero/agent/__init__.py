"""The per-site agent: boot services (DHCP via a supervised dnsmasq, TFTP, HTTP), boot state."""
