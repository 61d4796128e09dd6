using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Native;

/// <summary>
/// Constant tensors that live as long as the process, as <see cref="KeptScalars"/> are for scalars:
/// sampling grids, pixel indices, a zero. Each is made once per name, size, dtype and device and
/// taken out of every dispose scope, so no step's scope frees it.
/// </summary>
internal static class KeptTensors
{
    static readonly ConcurrentDictionary<(string Name, long Size, ScalarType Dtype, string Device), Tensor> Cache =
        new();

    /// <summary>
    /// The constant <paramref name="name"/> of <paramref name="size"/>, made by <paramref name="make"/> the first time.
    /// </summary>
    public static Tensor Get(string name, long size, ScalarType dtype, Device device, Func<Tensor> make) =>
        Cache.GetOrAdd((name, size, dtype, device.ToString()), _ => make().DetachFromDisposeScope());
}
