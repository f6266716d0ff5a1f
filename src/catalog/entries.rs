// The catalog, one entry per rule, in ID order. Examples live in
// `src/rules/examples/<ID>/{fail,pass}.yaml`; `asctl explain` prints them and the
// catalog tests run them.
rules! {
    YAML_SYNTAX = {
        id: "AS0001",
        name: "yaml-syntax",
        severity: Error,
        title: "the file is not valid YAML",
        origin: Asctl,
        scope: Structural,
        fix: "fix the YAML syntax at the position shown (indentation, quotes, brackets, `:` after keys)",
        explanation: "asctl reads YAML 1.2. A syntax error stops the reading of the file at that point: documents before the error are still checked, the rest of the file is not.",
    }
    DUPLICATE_KEY = {
        id: "AS0002",
        name: "duplicate-key",
        severity: Error,
        title: "a key appears twice in the same mapping",
        origin: Asctl,
        scope: Structural,
        fix: "remove one of the two keys, or merge their values",
        explanation: "YAML forbids duplicate keys, but many parsers silently keep the last value, so the first one is lost without a word. asctl rejects the document instead, pointing at the second key and, as a related location, at the first.",
    }
    INVALID_ENCODING = {
        id: "AS0003",
        name: "invalid-encoding",
        severity: Error,
        title: "the file is not UTF-8",
        origin: Asctl,
        scope: Structural,
        fix: "save the file as UTF-8 (without a byte-order mark in other encodings)",
        explanation: "Configuration files must be UTF-8. The finding points at the first byte that is not valid UTF-8; nothing in the file is read.",
    }
    EMPTY_DOCUMENT = {
        id: "AS0004",
        name: "empty-document",
        severity: Warning,
        title: "a document is empty",
        origin: Asctl,
        scope: Structural,
        fix: "remove the empty document (often a stray `---`), or fill it in",
        explanation: "A document with no content (only comments, or nothing between two `---`) describes no object. It is ignored, and reported because it is often the sign of a file that lost its content.",
    }
    RESOURCE_LIMIT = {
        id: "AS0005",
        name: "resource-limit",
        severity: Error,
        title: "the file exceeds a safety limit (size, nesting depth or alias expansion)",
        origin: Asctl,
        scope: Structural,
        fix: "split the file, reduce nesting, or write values out instead of expanding aliases many times",
        explanation: "To stay fast and safe on hostile input, asctl limits each file to 32 MiB, nesting to 64 levels and the nodes created by alias expansion to 100,000 per file. A \"billion laughs\" file, whose aliases expand to billions of nodes, is rejected at the first alias that crosses the limit, in milliseconds.",
    }
    MISSING_HEADER = {
        id: "AS0006",
        name: "missing-header",
        severity: Error,
        title: "a document has no `apiVersion` or no `kind`",
        origin: Asctl,
        scope: Structural,
        fix: "start every document with `apiVersion: asctl/v1` and `kind: <Kind>`",
        explanation: "Every document is an object in the Kubernetes style: `apiVersion`, `kind`, `metadata` and `spec`. Without `apiVersion` and `kind` asctl cannot know which schema applies, so the rest of the document is not checked.",
    }
    UNKNOWN_API_VERSION = {
        id: "AS0007",
        name: "unknown-api-version",
        severity: Error,
        title: "the `apiVersion` is not one this asctl understands",
        origin: Asctl,
        scope: Structural,
        fix: "use `apiVersion: asctl/v1`",
        explanation: "The format is versioned so that it can evolve without breaking existing files. This build reads `asctl/v1` only.",
    }
    UNKNOWN_KIND = {
        id: "AS0008",
        name: "unknown-kind",
        severity: Error,
        title: "the `kind` is not one of Domain, Host, Node, NetworkLine, DataSource, ResourceGroup",
        origin: Asctl,
        scope: Structural,
        fix: "use one of the six kinds (they are case-sensitive)",
        explanation: "A domain is described by six kinds of object. A document of another kind cannot be checked; the finding suggests the closest kind.",
    }
    UNKNOWN_FIELD = {
        id: "AS0009",
        name: "unknown-field",
        severity: Error,
        title: "a field is not part of the format",
        origin: Asctl,
        scope: Structural,
        fix: "remove the field or correct its spelling",
        explanation: "Unknown fields are errors, not silently ignored: a misspelt optional field (`failBack` for `failback`) would otherwise leave the default in force without anyone noticing. The finding suggests the closest known field.",
    }
    WRONG_TYPE = {
        id: "AS0010",
        name: "wrong-type",
        severity: Error,
        title: "a value has the wrong type",
        origin: Asctl,
        scope: Structural,
        fix: "give a value of the expected type (quote strings that look like numbers, e.g. `\"3.5\"`)",
        explanation: "Each field has one type: string, integer, boolean, list or mapping. YAML guesses types from the text, so `version: 3.5` is a number and `version: \"3.5\"` a string; asctl does not guess back.",
    }
    INVALID_NAME = {
        id: "AS0011",
        name: "invalid-name",
        severity: Error,
        title: "a name breaks the naming rule",
        origin: Asctl,
        scope: Structural,
        fix: "use lower-case letters, digits and `-`, at most 63 characters, starting and ending with a letter or digit",
        explanation: "Names follow the DNS label rule, as in Kubernetes, so that they can be used as host names, file names and metric labels without escaping.",
    }
    DUPLICATE_NAME = {
        id: "AS0012",
        name: "duplicate-name",
        severity: Error,
        title: "two objects of the same kind have the same name",
        origin: Asctl,
        scope: Structural,
        fix: "rename one of the two objects (names are unique per kind across all files)",
        explanation: "Objects refer to each other by name, so a name must designate one object. The finding points at the second definition, with the first as a related location.",
    }
    DOMAIN_COUNT = {
        id: "AS0013",
        name: "domain-count",
        severity: Error,
        title: "a domain has more than one Domain document",
        origin: Asctl,
        scope: Structural,
        fix: "keep one `kind: Domain` document per domain directory; put another domain in a directory of its own",
        explanation: "The directory of a file holding a `Domain` document roots a domain: every file below it, down to the next such directory, belongs to that domain. Two Domain documents in one directory make it unclear which settings (heartbeats, isolation, qualification) apply. Files under no Domain are not an error: each is checked alone, as far as a file alone can be; `plan` and `apply` refuse them, since they need a domain.",
    }
    DANGLING_REFERENCE = {
        id: "AS0014",
        name: "dangling-reference",
        severity: Error,
        title: "a reference names an object that does not exist",
        origin: Asctl,
        scope: Structural,
        fix: "define the object, or correct the name",
        explanation: "References between objects are by name (a node's `host`, a group's `preferredNodes`, `dataSources`, an IP's `line`, a data source's `on`, `pairedWith` and `members`). The finding points at the referring value and suggests the closest existing name.",
    }
    MISSING_FIELD = {
        id: "AS0015",
        name: "missing-field",
        severity: Error,
        title: "a required field is missing",
        origin: Asctl,
        scope: Structural,
        fix: "add the field",
        explanation: "Some fields have no sensible default (a host's hypervisor, a line's subnet, a group's preferred nodes). The finding points at the object that lacks the field.",
    }
    INVALID_VALUE = {
        id: "AS0016",
        name: "invalid-value",
        severity: Error,
        title: "a value is not allowed for its field",
        origin: Asctl,
        scope: Structural,
        fix: "use a value the field accepts (the message names the allowed values or the expected form)",
        explanation: "Enumerations (`role: domain | verification`), formats (durations like `250ms`, addresses like `10.1.0.0/24`) and ranges are checked. The finding lists the allowed values and suggests the closest one.",
    }
    ACCEPT_ERROR_UNACKNOWLEDGED = {
        id: "AS0017",
        name: "accept-error-unacknowledged",
        severity: Error,
        title: "an error is accepted without `acknowledgeUnsupported: true`",
        origin: Asctl,
        scope: Structural,
        fix: "add `acknowledgeUnsupported: true` to the entry if you really run an unsupported configuration, or fix the configuration",
        explanation: "Warnings can be accepted with a reason. An error of the seed's rules (its tables, AS01xx, and prose, AS02xx) means the qualification does not support the configuration; accepting one must be an explicit, visible decision, so the entry must also say `acknowledgeUnsupported: true`. (asctl's own errors cannot be accepted at all: `accept-not-allowed`.)",
    }
    ACCEPT_UNUSED = {
        id: "AS0018",
        name: "accept-unused",
        severity: Warning,
        title: "an acceptance names an unknown rule or matches no finding",
        origin: Asctl,
        scope: Structural,
        fix: "remove the entry, or correct the rule ID or object names",
        explanation: "Stale acceptances hide future findings of the same rule without anyone deciding so. An entry that matches nothing is reported so that it can be removed.",
    }
    ACCEPT_NOT_ALLOWED = {
        id: "AS0019",
        name: "accept-not-allowed",
        severity: Error,
        title: "an acceptance names a rule whose findings cannot be accepted",
        origin: Asctl,
        scope: Structural,
        fix: "fix the configuration and remove the entry: only the seed's rules (AS01xx, AS02xx) and asctl's warnings can be accepted",
        explanation: "`Domain.spec.accept` is for findings of the qualification — the seed's tables (AS01xx) and prose rules (AS02xx), whose errors can be accepted with `acknowledgeUnsupported: true` when you knowingly run an unsupported configuration — and for asctl's own warnings. asctl's own errors are different: a file that cannot be read, a field that is not part of the format, a dangling reference, a managed IP outside its line's subnet (AS00xx, AS03xx) describe a configuration that asctl cannot read or that cannot run, and accepting one would let `validate` pass it. An entry naming such a rule (or `accept-unused`) is itself an error, at the entry, and accepts nothing, even with `acknowledgeUnsupported: true`.",
    }
    NOT_REGULAR_FILE = {
        id: "AS0020",
        name: "not-regular-file",
        severity: Error,
        title: "an input is not a regular file (a FIFO, a device, a socket)",
        origin: Asctl,
        scope: Structural,
        fix: "remove it from the configuration directory, or rename it so that it does not end in `.yaml` or `.yml`, or give the regular file it stands for",
        explanation: "Only regular files are read, whether named on the command line or found in a directory. A FIFO would make the command wait for a writer forever, and reading a device can have effects of its own or never end, so such a path is never opened: `validate`, `plan` and `watch` report it as this finding (at line 1 of the path) and read everything else. The example shows a configuration directory with a FIFO `pipe.yaml` next to it (made with `mkfifo`); a YAML text cannot be a FIFO, so `asctl explain` prints the regular file that goes with it.",
    }
    MATRIX_UNSUPPORTED = {
        id: "AS0101",
        name: "matrix-unsupported",
        severity: Error,
        title: "the seed's table says `no` for this resource, backing and pair of nodes",
        origin: Seed("Tables 1–10"),
        scope: Qualification,
        fix: "use a backing the table supports for this pair of nodes, another data source type, or other preferred nodes",
        explanation: "Tables 1–10 of the seed say, for each data source type (and for managed IPs and node aliases), which device backings (VMFS, RDM physical mode, RDM virtual mode) are supported for each kind of failover: between two VMs of one host, between VMs of different hosts, and between a physical machine and a VM. For each resource group, asctl classifies every pair of its preferred nodes and looks up every data source of the group (with its device's backing; a mount point with the backing of its shared disk; a composite with each member's, support being the intersection of the members') in the table. Pairs of two physical machines are outside the VMware tables and are not judged. The finding names the pair, the backing, the table and the cell, and points at the data source in the group; `asctl matrix` prints the tables.",
    }
    MATRIX_NOT_APPLICABLE = {
        id: "AS0102",
        name: "matrix-not-applicable",
        severity: Error,
        title: "the seed's table says `NA`: this configuration cannot exist",
        origin: Seed("Tables 5, 6"),
        scope: Qualification,
        fix: "array replication needs two arrays: keep MirrorView/SRDF groups off pairs of VMs of one host (use a shared disk between them)",
        explanation: "MirrorView (Table 5) and SRDF (Table 6) replicate a LUN from one storage array to another. Between two VMs of the same ESX Server both see the same array, so there is nothing to replicate between: the seed marks these cells `NA`. asctl reports a group whose preferred nodes include two VMs of one host and which uses such a data source, with its own message because the configuration is not merely unqualified but meaningless.",
    }
    HYPERVISOR_VERSION = {
        id: "AS0201",
        name: "hypervisor-version",
        severity: Error,
        title: "the host's hypervisor version is not qualified",
        origin: Seed("Supported ESX Server"),
        scope: Qualification,
        fix: "run a qualified version: ESX Server 3.0.x, 3.5, 4.0 or 3i",
        explanation: "AutoStart has been qualified with VMware ESX Server 3.0.x, 3.5, 4.0 and 3i. A maintenance release of a qualified version (`3.0.2`, `3.5u4`, `4.0.1`) is accepted; any other version is not qualified.",
    }
    GUEST_OS = {
        id: "AS0202",
        name: "guest-os",
        severity: Error,
        title: "the VM's guest OS is not supported",
        origin: Seed("Supported ESX Server"),
        scope: Qualification,
        fix: "run Windows 2003 or Windows 2008 in the VM",
        explanation: "The supported guest operating systems are Windows 2003 and Windows 2008 (32-bit on x86 and x64, 64-bit on x64). The rule applies to VMs (nodes with `host:`); physical nodes are outside the seed's guest OS list.",
    }
    GUEST_OS_PLATFORM = {
        id: "AS0203",
        name: "guest-os-platform",
        severity: Error,
        title: "a 64-bit OS on the x86 platform",
        origin: Seed("Supported ESX Server"),
        scope: Qualification,
        fix: "use `platform: x64`, or a 32-bit OS",
        explanation: "32-bit Windows is supported on x86 and x64 platforms, 64-bit Windows only on x64.",
    }
    MODULE_WORD_SIZE = {
        id: "AS0204",
        name: "module-word-size",
        severity: Error,
        title: "a module runs on a node whose OS word size it does not support",
        origin: Seed("AutoStart modules"),
        scope: Qualification,
        fix: "run the group on nodes with the module's word size (Exchange 2003: 32-bit; Exchange 2007: 64-bit)",
        explanation: "The AutoStart modules are SQL Server 2005, SQL Server 2008, Exchange 2003 (32-bit Windows only), Exchange 2007 (64-bit Windows only), Oracle and Print Services. A group with a module can fail over to any of its preferred nodes, so every one of them must run an OS the module supports.",
    }
    WINDOWS_ONLY = {
        id: "AS0205",
        name: "windows-only-resource",
        severity: Error,
        title: "a Windows module or node alias on a node that does not run Windows",
        origin: Seed("AutoStart modules; Network redundancy"),
        scope: Structural,
        fix: "run the group on Windows nodes only, or use processes and a managed IP instead",
        explanation: "AutoStart's application modules are provided for Windows, and a node alias is a Windows (NetBIOS) name. A group that has one cannot be brought online on a node running another OS; every preferred node must run Windows. Applies in every profile: it is a property of the resources, not of VMware.",
    }
    MIRRORING_ASYNC = {
        id: "AS0206",
        name: "mirroring-async",
        severity: Error,
        title: "EMC Mirroring set to asynchronous",
        origin: Seed("EMC Mirroring"),
        scope: Structural,
        fix: "remove `mode` (mirroring is synchronous), or use repliStor for asynchronous replication",
        explanation: "The EMC Mirroring data source provides synchronous volume-level mirroring. `mode: async` describes something it does not do.",
    }
    MIRRORING_TWO_NODES = {
        id: "AS0207",
        name: "mirroring-two-nodes",
        severity: Error,
        title: "a mirror is used on other than exactly two nodes",
        origin: Seed("EMC Mirroring"),
        scope: Structural,
        fix: "let the groups that use the mirror have exactly two preferred nodes between them",
        explanation: "\"Mirroring is synchronous and is supported only between two nodes\": the two copies of the volume live on the two nodes. A mirror is one volume whichever groups use it, so asctl takes the union of the preferred nodes of every group that uses the mirroring data source (directly or in a composite) and requires exactly two distinct nodes: two groups of two nodes each that share one node put the mirror on three nodes. The finding points at the group's reference that brings the third node (or, with a single node, at the first reference). A group with a node that was dropped (it failed the schema) or that is elsewhere (a file checked alone) leaves the union unknown, and the mirror is not judged.",
    }
    MOUNT_POINT_ON_SHARED_DISK = {
        id: "AS0208",
        name: "mount-point-on-shared-disk",
        severity: Error,
        title: "a mount point is not on a shared disk",
        origin: Seed("Mount Point"),
        scope: Structural,
        fix: "set the mount point's `on:` to a data source of `type: sharedDisk`",
        explanation: "The prerequisite for creating a mount point is a shared disk; the mount point behaves exactly like the shared disk and is judged with its backing (Table 4).",
    }
    SHARED_DISK_MIXED_TOPOLOGY = {
        id: "AS0209",
        name: "shared-disk-mixed-topology",
        severity: Error,
        title: "a shared disk is shared within one host and across hosts at the same time",
        origin: Seed("Shared Disk"),
        scope: Qualification,
        fix: "use one disk for the VMs of one host (bus sharing virtual) and another for sharing across hosts (bus sharing physical)",
        explanation: "Table 3 supports shared disks between VMs of one ESX Server and between VMs of different ESX Servers, but \"a given device cannot be configured to be shared between two virtual machines on an ESX Server and between virtual machines across ESX Servers at the same time\": the SCSI controller's bus sharing is `virtual` for the first and `physical` for the second. A disk is one device whichever groups use it: asctl takes the union of the preferred nodes of every group that uses the disk (directly, through a mount point or a composite, to any depth) and judges every pair of that union, so two groups that each keep to one kind of sharing still share the disk both ways when their nodes together do. Sharing with a physical machine counts as sharing across hosts.",
    }
    VMFS_SHARED_DISK_THICK = {
        id: "AS0210",
        name: "vmfs-shared-disk-thick",
        severity: Error,
        title: "a shared VMFS disk is thin-provisioned",
        origin: Seed("Shared Disk"),
        scope: Qualification,
        fix: "create the disk with the \"thick\" option and write `provisioning: thick`",
        explanation: "A shared disk on a VMFS volume is created from the command line with the \"thick\" option, whether it is shared within one host or across hosts. A thin disk cannot be shared between VMs.",
    }
    SCSI_BUS_SHARING = {
        id: "AS0211",
        name: "scsi-bus-sharing",
        severity: Error,
        title: "a shared disk's SCSI bus sharing does not match how it is shared",
        origin: Seed("Shared Disk"),
        scope: Qualification,
        fix: "`scsiBusSharing: virtual` for VMs of one host; `physical` across hosts or with a physical machine",
        explanation: "To share a disk between VMs on a single ESX Server, the SCSI Bus Sharing of its controller is set to Virtual; across ESX Servers (and with a physical machine) it is set to Physical. Unset means VMware's default, `none`, which shares nothing. How a disk is shared is judged over the union of the preferred nodes of every group that uses it (as for `shared-disk-mixed-topology`): a group on one VM that shares the disk with another group's VM on another host shares it across hosts.",
    }
    REPLICATION_PAIRING = {
        id: "AS0212",
        name: "replication-pairing",
        severity: Error,
        title: "MirrorView/SRDF not combined with the data source its mode needs",
        origin: Seed("MirrorView; SRDF"),
        scope: Structural,
        fix: "RDM mode: `pairedWith:` a sharedDisk data source on the RDM device; VMFS mode: `pairedWith:` a vmfs data source",
        explanation: "In RDM mode the MirrorView and SRDF data sources are used in combination with a Shared Disk data source to support local and remote failovers; in VMFS mode, with the VMFS data source, which adds and removes the virtual disks through VirtualCenter when the group goes online or offline. `pairedWith` names that data source. In RDM mode the shared disk is the replicated LUN mapped to the VMs as an RDM, so its device must be an RDM too: a shared disk on a VMFS virtual disk is not that LUN. (A VMFS data source on an RDM is `vmfs-data-source-backing`; a group must also use the partner: `replication-partner-in-group`.)",
    }
    COMPOSITE_MEMBER_TYPE = {
        id: "AS0213",
        name: "composite-member-type",
        severity: Error,
        title: "a composite groups a data source type it cannot contain",
        origin: Seed("Composite"),
        scope: Structural,
        fix: "put only mirroring, sharedDisk, repliStor and vxvm data sources in a composite",
        explanation: "A composite data source can contain four types of data sources: EMC Mirroring, Shared Disk, RepliStor and Veritas Volume Manager. Its support in each configuration is the intersection of its members' (checked by `matrix-unsupported`).",
    }
    COMPOSITE_TOO_FEW_MEMBERS = {
        id: "AS0214",
        name: "composite-too-few-members",
        severity: Error,
        title: "a composite groups fewer than two data sources",
        origin: Seed("Composite"),
        scope: Structural,
        fix: "list two or more `members`, or use the single data source directly",
        explanation: "The Composite data source groups two or more individual data sources into one.",
    }
    VMOTION_SHARED_STORAGE = {
        id: "AS0215",
        name: "vmotion-shared-storage",
        severity: Error,
        title: "VMotion enabled on a VM that uses shared storage",
        origin: Seed("VMware caveats: VMotion"),
        scope: Qualification,
        fix: "set `vmotion: false` on VMs whose groups use shared disks",
        explanation: "VMware does not allow VMotion when the VM has storage shared with other VMs: the SCSI bus sharing of its controller must be `none`. So a VM whose groups use a Shared Disk data source (directly, through a mount point or a composite) or any device on a shared SCSI bus cannot have VMotion enabled.",
    }
    VMOTION_ACROSS_DATACENTERS = {
        id: "AS0216",
        name: "vmotion-across-datacenters",
        severity: Error,
        title: "a VMotion target host is in another datacenter",
        origin: Seed("VMware VMotion"),
        scope: Qualification,
        fix: "list only hosts of the VM's datacenter in `vmotion`",
        explanation: "VMotion cannot migrate VMs across datacenters. When `vmotion` lists target hosts, each must be in the datacenter of the VM's host (when both datacenters are given).",
    }
    GUEST_NIC_TEAMING = {
        id: "AS0217",
        name: "guest-nic-teaming",
        severity: Error,
        title: "NIC teaming in the guest OS",
        origin: Seed("Network redundancy"),
        scope: Qualification,
        fix: "team the NICs in ESX (`nicTeaming: hypervisor`), invisible to the guest",
        explanation: "NIC teaming at the ESX Server level is transparent to the guest OS and to AutoStart, and fine. NIC teaming at the operating system level is an unsupported configuration with AutoStart.",
    }
    VMWARE_HA = {
        id: "AS0218",
        name: "vmware-ha",
        severity: Warning,
        title: "VMware HA is enabled on a host of a node",
        origin: Seed("VMware HA"),
        scope: Qualification,
        fix: "disable VMware HA for the AutoStart VMs, or accept the warning with a reason",
        explanation: "AutoStart has not been qualified to work with VMware HA. Both would restart the application after a failure, without knowing of each other.",
    }
    CLUSTER_IN_A_BOX = {
        id: "AS0219",
        name: "cluster-in-a-box",
        severity: Warning,
        title: "every preferred node of a group is a VM on the same host",
        origin: Seed("Cluster in a Box"),
        scope: Qualification,
        fix: "add a preferred node on another host or a physical machine, or accept the warning",
        explanation: "A Cluster in a Box protects against failures of the operating system or the application but provides no protection against hardware failures: when the host fails, every node of the group fails with it. A supported configuration; the warning makes the limit visible. Accept it (`Domain.spec.accept`) when it is what you want.",
    }
    NETWORK_LINES = {
        id: "AS0220",
        name: "network-lines",
        severity: Warning,
        title: "a node is on fewer than two domain lines or no verification line",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "put every node on two `role: domain` lines and one `role: verification` line",
        explanation: "AutoStart recommends that every node be configured with at least three network lines: two domain lines, which carry the heartbeats, and one verification line.",
    }
    NO_MULTICAST_HEARTBEAT = {
        id: "AS0221",
        name: "no-multicast-heartbeat",
        severity: Warning,
        title: "heartbeats are not multicast",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "set `heartbeat.multicast` to a multicast group, e.g. `239.192.0.1`",
        explanation: "The seed advises enabling multicast for the node heartbeats.",
    }
    NO_ISOLATION_ADDRESSES = {
        id: "AS0222",
        name: "no-isolation-addresses",
        severity: Warning,
        title: "the domain has no isolation addresses",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "add external addresses (e.g. the default gateways) to `isolation.addresses`",
        explanation: "External IP addresses should be configured as isolation addresses: the virtual switch of an ESX Server keeps the VMs of one host reachable from each other even when the external lines are down, so only an address outside the host tells a node it is isolated.",
    }
    HOST_NICS = {
        id: "AS0223",
        name: "host-nics",
        severity: Warning,
        title: "a host has fewer than three network cards",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "give the host at least three physical NICs",
        explanation: "An AutoStart node uses three network adapters (two domain lines, one verification line), so the seed recommends at least three network cards in the ESX Server host.",
    }
    PCI_SLOTS = {
        id: "AS0224",
        name: "pci-slots",
        severity: Error,
        title: "a VM has more NICs and SCSI controllers than PCI slots",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "3 NICs and 2 SCSI controllers fill the 5 PCI slots of a VM",
        explanation: "Each VM has five PCI slots by default (`pciSlots`); each network adapter and each SCSI controller takes one. An AutoStart node typically uses three for network adapters and two for SCSI controllers. An unset `scsiControllers` counts as one (SCSI 0, which holds the boot disk, always exists), as for `scsi-controllers`.",
    }
    SCSI_CONTROLLERS = {
        id: "AS0225",
        name: "scsi-controllers",
        severity: Warning,
        title: "a VM with data source disks has fewer than two SCSI controllers",
        origin: Seed("VMware caveats: Network connection loss"),
        scope: Qualification,
        fix: "create SCSI controller 1 before configuring AutoStart or networking, and write `scsiControllers: 2`",
        explanation: "Adding a virtual SCSI controller pushes the virtual Ethernet controllers to new PCI slots: the primary network interface is deleted and a new one added, and the network connections are reset (VMware KB 1513). An AutoStart node uses SCSI 0 (created with the boot disk) and SCSI 1; the workaround is to create SCSI 1 before AutoStart or networking is configured. asctl warns for a VM whose groups use a data source with a disk (anything but a network share) and that declares fewer than two controllers (unset counts as one, SCSI 0).",
    }
    REPLICATION_PARTNER_IN_GROUP = {
        id: "AS0226",
        name: "replication-partner-in-group",
        severity: Error,
        title: "a group uses MirrorView/SRDF without the data source it is combined with",
        origin: Seed("MirrorView; SRDF"),
        scope: Structural,
        fix: "add the `pairedWith` data source to the group's `dataSources`",
        explanation: "In RDM mode the MirrorView and SRDF data sources are used in combination with the Shared Disk data source, in VMFS mode with the VMFS data source, which adds and removes the virtual disks of a VM when the resource group is brought online or offline: the two work together, in the group. So a group that lists a MirrorView or SRDF data source also uses its `pairedWith` data source (listed directly or in a composite); it is then brought online with the group and judged like any of its data sources — the seed's tables (Table 3 for a shared disk) for the group's pairs of nodes, SCSI bus sharing, sharing within and across hosts, VMotion.",
    }
    ISOLATION_ADDRESS_NOT_EXTERNAL = {
        id: "AS0227",
        name: "isolation-address-not-external",
        severity: Warning,
        title: "an isolation address is an address of the domain itself",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "use addresses outside the domain as isolation addresses, e.g. the lines' default gateways",
        explanation: "\"It is also recommended that external IP addresses be configured as the Isolation Addresses for the node. The virtual switch in ESX Server will make the nodes within the ESX Server box reachable even if external lines are down.\" A node that stops hearing the others pings its isolation addresses to tell whether it is cut off itself. An address of the domain — a node's own address on a network line, or a managed address of a group, which lives on whichever node runs the group — can still answer through the virtual switch of the node's own host when every external line is down, so the node wrongly concludes it is not isolated. asctl warns for each isolation address that is a line member's address or a group's managed address. (No isolation address at all is `no-isolation-addresses`.)",
    }
    MANAGED_IP_OUTSIDE_SUBNET = {
        id: "AS0301",
        name: "managed-ip-outside-subnet",
        severity: Error,
        title: "a managed IP is outside the subnet of its line",
        origin: Asctl,
        scope: Structural,
        fix: "use an address of the line's subnet, or the line whose subnet holds it",
        explanation: "A managed IP is added on the interface of its network line on the node that runs the group; an address outside the line's subnet is unreachable there.",
    }
    MANAGED_IP_LINE_UNREACHABLE = {
        id: "AS0302",
        name: "managed-ip-line-unreachable",
        severity: Error,
        title: "the line of a managed IP does not reach every preferred node of the group",
        origin: Asctl,
        scope: Structural,
        fix: "add the node to the line's members, or use a line every preferred node is on",
        explanation: "The group can fail over to any of its preferred nodes, and its managed IP moves with it: each preferred node must be a member of the IP's line, or the address cannot come online there.",
    }
    LINE_MEMBER_OUTSIDE_SUBNET = {
        id: "AS0303",
        name: "line-member-outside-subnet",
        severity: Error,
        title: "a node's address on a line is outside the line's subnet",
        origin: Asctl,
        scope: Structural,
        fix: "give the node an address of the line's subnet",
        explanation: "Each member of a network line has an address on the line's subnet; heartbeats and verification are sent there. An address outside the subnet is a typo or the wrong line.",
    }
    DUPLICATE_ADDRESS = {
        id: "AS0304",
        name: "duplicate-address",
        severity: Error,
        title: "an IP address is used twice",
        origin: Asctl,
        scope: Structural,
        fix: "give every node address and managed IP its own address",
        explanation: "Node addresses on the lines and managed IP addresses of the groups must all be distinct: two users of one address answer each other's traffic. The finding points at the second use, with the first as a related location.",
    }
    DUPLICATE_PREFERRED_NODE = {
        id: "AS0305",
        name: "duplicate-preferred-node",
        severity: Error,
        title: "a node is listed twice in a group's preferred nodes",
        origin: Asctl,
        scope: Structural,
        fix: "list each node once, in failover order",
        explanation: "`preferredNodes` is the failover order; a node listed twice makes the order ambiguous (and often hides a typo for another node).",
    }
    NODE_PLACEMENT = {
        id: "AS0306",
        name: "node-placement",
        severity: Error,
        title: "a node is neither a VM (`host:`) nor physical, or both",
        origin: Asctl,
        scope: Structural,
        fix: "give exactly one of `host: <Host>` or `physical: true`",
        explanation: "Support depends on whether a node is a VM and on which host (the topology of the seed's tables), so every node says exactly one of the two.",
    }
    DATA_SOURCE_FIELD_MISSING = {
        id: "AS0307",
        name: "data-source-field-missing",
        severity: Error,
        title: "a data source lacks a field its type needs",
        origin: Asctl,
        scope: Structural,
        fix: "add the field the message names",
        explanation: "Each data source type needs its own fields: `device` for every type with a disk of its own (all but networkShare, composite and mountPoint), `on` and `path` for a mountPoint, `share` for a networkShare. (A composite's `members` are checked by `composite-too-few-members`.)",
    }
    DATA_SOURCE_FIELD_UNUSED = {
        id: "AS0308",
        name: "data-source-field-unused",
        severity: Error,
        title: "a data source has a field its type does not use",
        origin: Asctl,
        scope: Structural,
        fix: "remove the field, or correct `type`",
        explanation: "Fields of another type (`device` on a networkShare, `members` on a sharedDisk, `pairedWith` on mirroring, ...) would be silently ignored; like unknown fields they are errors, since they usually mean a wrong `type`.",
    }
    VMFS_DATA_SOURCE_BACKING = {
        id: "AS0309",
        name: "vmfs-data-source-backing",
        severity: Error,
        title: "a vmfs data source's device is not on VMFS",
        origin: Asctl,
        scope: Structural,
        fix: "write `backing: vmfs`, or use a sharedDisk for an RDM device",
        explanation: "The VMFS data source adds and removes virtual disks of a VMFS volume through VirtualCenter; an RDM device is not one.",
    }
    TWO_NODE_SPLIT_BRAIN = {
        id: "AS0310",
        name: "two-node-split-brain",
        severity: Warning,
        title: "a two-node domain without witness can split brain",
        origin: Asctl,
        scope: Structural,
        fix: "add a `witness`, or give both nodes a verification line and isolation addresses with `response: offline`",
        explanation: "When the two nodes of a two-node domain lose sight of each other, neither has a majority. Without a witness, only the verification line and the isolation addresses (with the response `offline`) keep a node that is cut off from bringing a group online while the other still runs it. The warning names what is missing.",
    }
    HEARTBEAT_TIMING = {
        id: "AS0311",
        name: "heartbeat-timing",
        severity: Error,
        title: "the heartbeat timeout is not longer than the interval (or the interval is 0)",
        origin: Asctl,
        scope: Structural,
        fix: "make `heartbeat.timeout` several intervals long (the defaults: `interval: 250ms`, `timeout: 1s`)",
        explanation: "Nodes send a heartbeat on every domain line each `interval`; a peer silent on every line for `timeout` is suspected. With a timeout no longer than the interval, a healthy peer is silent for a whole timeout between two of its heartbeats and would be suspected at every beat; an interval of 0 would send heartbeats without pause. The finding points at the timeout (or the interval when only that is written).",
    }
    OS_NOT_GIVEN = {
        id: "AS0312",
        name: "os-not-given",
        severity: Warning,
        title: "a node does not give its OS, so the rules about its OS cannot be checked",
        origin: Asctl,
        scope: Structural,
        fix: "give the node's `os: {name, bits}` (and `platform`)",
        explanation: "The seed's guest OS rules (`guest-os`, `guest-os-platform`), its module rules (`module-word-size`: Exchange 2003 on 32-bit Windows only, Exchange 2007 on 64-bit only) and the Windows-only resources (`windows-only-resource`: modules and node aliases) are checked against each node's `os`. A node without `os` would pass all of them silently. Under a VMware profile every node without `os` is reported; under every profile (Windows-only resources are not a VMware matter), so is a group with a module or a node alias whose preferred nodes include one without `os`, at the module or alias.",
    }
    NODE_NICS = {
        id: "AS0313",
        name: "node-nics",
        severity: Warning,
        title: "a node is on more network lines than it has NICs",
        origin: Asctl,
        scope: Structural,
        fix: "give the node one network adapter per line (`nics`), or take it off a line",
        explanation: "Several network lines protect a domain only when they fail independently: each line needs its own network adapter on the node (the seed counts three adapters for two domain lines and a verification line). A node on more lines than its `nics` shares an adapter between lines, which then fail together. `nics` counts the adapters the node sees: NIC teaming in the hypervisor (`nicTeaming: hypervisor`) is below them and changes nothing; teaming in the guest (`nicTeaming: guest`, itself unsupported under the seed) groups \"one or more NICs\" into an interface, so the node still has at most `nics` interfaces and is judged the same way. A node that does not give `nics` is not judged.",
    }
    NO_LINUX_DRIVER = {
        id: "AS0314",
        name: "no-linux-driver",
        severity: Warning,
        title: "a data source a Linux node may run has no driver there and no `agent`",
        origin: Asctl,
        scope: Structural,
        fix: "give the data source an `agent: {ocf: PROVIDER:TYPE, params: {...}}` that drives it on Linux, or run its group on nodes that support it",
        explanation: "On Linux, asctl drives `sharedDisk`, `mountPoint` and `composite` data sources itself. Every other type (mirroring, MirrorView, SRDF, VMFS, network shares, RepliStor, VxVM) needs hardware or an array interface that only an OCF resource agent knows how to drive: DRBD's agent for mirroring, the array vendor's agent for SRDF or MirrorView, LVM-activate for a volume group. Without an `agent`, a Linux node refuses to start the data source (a permanent start error that fails the group over), so the group never runs without its data, but it never runs on that node either. The finding names the first Linux node among the group's preferred nodes.",
    }
    OCF_AGENT_NAME = {
        id: "AS0315",
        name: "ocf-agent-name",
        severity: Error,
        title: "an OCF agent is not named `PROVIDER:TYPE`",
        origin: Asctl,
        scope: Structural,
        fix: "write the agent as `PROVIDER:TYPE`, e.g. `heartbeat:Filesystem` (the agent at `$OCF_ROOT/resource.d/heartbeat/Filesystem`)",
        explanation: "An OCF resource agent is found at `$OCF_ROOT/resource.d/PROVIDER/TYPE` (`OCF_ROOT` is `/usr/lib/ocf` unless the agent's environment sets it). Both parts must be plain names (letters, digits, `-`, `_`, `.`): a `/` or `..` would name a program outside the agents' directory.",
    }
    OCF_PARAM_MISSING = {
        id: "AS0316",
        name: "ocf-param-missing",
        severity: Error,
        title: "an OCF agent's required parameter is not given",
        origin: Asctl,
        scope: Structural,
        fix: "add the parameter under `params`",
        explanation: "Checked where the agent is installed on the machine that runs `asctl validate`: asctl runs its `meta-data` action and compares the parameters the configuration gives with those the agent declares `required=\"1\"`. The agent would refuse to start without them (usually with OCF_ERR_CONFIGURED, which fails the group everywhere).",
    }
    OCF_PARAM_UNKNOWN = {
        id: "AS0317",
        name: "ocf-param-unknown",
        severity: Warning,
        title: "a parameter is not one the OCF agent declares",
        origin: Asctl,
        scope: Structural,
        fix: "correct the parameter's name (see the agent's `meta-data`), or remove it",
        explanation: "Checked where the agent is installed on the machine that runs `asctl validate`. Agents ignore environment variables they do not know, so a misspelt parameter (`fs_type` for `fstype`) silently leaves the agent with its default; asctl flags it and suggests the closest declared name.",
    }
    OCF_AGENT_NOT_INSTALLED = {
        id: "AS0318",
        name: "ocf-agent-not-installed",
        severity: Note,
        title: "an OCF agent is not installed where validate runs, so its parameters are not checked",
        origin: Asctl,
        scope: Structural,
        fix: "run `asctl validate` where the agent is installed (e.g. a node, or a machine with the `resource-agents` package), or ignore this note",
        explanation: "asctl checks an agent's parameters against the agent's own `meta-data`, which it can only read where the agent is installed. Elsewhere it says so rather than pass the parameters silently; the nodes still check them when they run the agent.",
    }
    EXEC_TOO_LARGE = {
        id: "AS0319",
        name: "exec-too-large",
        severity: Error,
        title: "a process's command, arguments and environment exceed what the kernel accepts in one exec",
        origin: Asctl,
        scope: Structural,
        fix: "pass large values in a file (give its path in the environment or the arguments) instead of in the value itself",
        explanation: "The kernel refuses to start a program (`E2BIG`, \"Argument list too long\") when one argument or environment string is longer than 128 KiB (`MAX_ARG_STRLEN` on Linux), or when all of them together — each with its terminating NUL and a pointer — exceed `ARG_MAX` (what `getconf ARG_MAX` prints: a quarter of the stack size limit, 2 MiB by default). Such a process validates and applies but can never start on any node, so `validate` reports it: each string over 128 KiB at the string, and a total over the limit at the process. The total counts `ASCTL_NODE` and `ASCTL_GROUP`, which the agent adds; the agent's own environment, which the process inherits, comes on top. The limit checked is the one of the machine `validate` runs on; a node whose stack limit is smaller refuses sooner, and its start error says so.",
    }
}
