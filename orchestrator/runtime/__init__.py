"""Side effects behind Protocols, each with a recording fake shipped here: process and namespaces,
cgroups, network, images."""
