"""Container networking: `linux.netDevices` and the four Docker-style network modes.

Everything here uses pyroute2 for netlink, which costs ~400 ms to import; nothing outside this
package imports it, and this package is imported only by a create whose config names
netDevices, a delete of such a container, and the `pyrunc network` hook program.
"""
