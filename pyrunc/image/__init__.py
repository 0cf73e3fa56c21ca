"""Run an OCI image directly: a layer store and an overlay root filesystem.

An image is a stack of read-only layers (tar change sets) plus a config. `pyrunc bundle create`
turns an OCI image layout into a bundle that any runtime can run:

    layout.py   read index.json, pick a manifest by tag or digest, verify every blob's digest
    unpack.py   unpack one layer tar into a directory, safely (fd-relative, no escapes) and with
                OCI whiteouts turned into overlay whiteouts
    store.py    the content-addressed layer store: each layer unpacked once, shared by every
                bundle, references per bundle, garbage collection of unused layers
    merge.py    the merged view: an overlay mount (lowerdir = layers, upperdir = the
                container's writes), or a plain copy where overlay cannot be used
    config.py   the image config (entrypoint, cmd, env, user, ...) on top of `pyrunc spec`
                defaults
    bundle.py   `bundle create` / `bundle rm` / `bundle gc`, one owner for each resource

Where the overlay is mounted: at `bundle create` time, on the bundle's own `rootfs` directory,
in the caller's mount namespace; `bundle rm` unmounts it. The alternative (a mount or a hook in
config.json that mounts the overlay when the container is created) would make the bundle usable
only by a runtime that understands that mount: an OCI `root.path` must already be a directory
holding the root filesystem when `create` runs, and hooks run after the root is prepared. With
the overlay mounted up front the bundle is a plain OCI bundle: `pyrunc run DIR` and `runc run`
both work on it unchanged. The cost is that the mount does not survive a reboot;
`pyrunc bundle mount DIR` mounts it again from what the bundle recorded.
"""
