namespace Squash.Runtime.Gpu;

/// <summary>Thrown while lowering a node to device kernels when this node cannot run on the device (a data type, an
/// attribute or a non-constant parameter the kernels do not cover); the node then runs on the host instead.</summary>
internal sealed class NotOnDeviceException(string reason) : Exception(reason);
