using static Sqair.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Model;

/// <summary>
/// The N object slots of every particle row (R = B·K rows) after a time step, present slots first.
/// What [R, N, D]; Where [R, N, 4] logits; Presence [R, N] 0/1; PresenceProb [R, N];
/// Ids [R, N] int64 (−1 absent); Temporal and Prior [R, N, hidden] RNN states.
/// </summary>
internal sealed record ObjectSlots(Tensor What, Tensor Where, Tensor Presence, Tensor PresenceProb, Tensor Ids, Tensor Temporal, Tensor Prior)
{
    /// <summary>Slots of one source (propagation or discovery) before merging, so the merge can treat both alike.</summary>
    public static ObjectSlots Cat(ObjectSlots a, ObjectSlots b) => new(
        cat([a.What, b.What], 1), cat([a.Where, b.Where], 1), cat([a.Presence, b.Presence], 1),
        cat([a.PresenceProb, b.PresenceProb], 1), cat([a.Ids, b.Ids], 1), cat([a.Temporal, b.Temporal], 1), cat([a.Prior, b.Prior], 1));

    /// <summary>The slots of the rows <paramref name="rows"/> [R'] (a particle's objects, ids and RNN states move together).</summary>
    public ObjectSlots Select(Tensor rows) =>
        new(What[rows], Where[rows], Presence[rows], PresenceProb[rows], Ids[rows], Temporal[rows], Prior[rows]);

    /// <summary>
    /// Moves present slots to the front keeping their relative order (a stable partition) and keeps
    /// the first <paramref name="n"/>. Everything belonging to an object moves with it.
    /// </summary>
    public ObjectSlots CompactFirst(int n)
    {
        long slots = Presence.shape[1];
        var order = Arange(slots, ScalarType.Float32, Presence.device);
        var key = Presence.OneMinus().mul(Kept(slots)).Plus(order);
        var index = key.argsort(1).narrow(1, 0, n);
        Tensor Take(Tensor t)
        {
            var idx = index;
            for (int d = 2; d < t.dim(); d++) idx = idx.unsqueeze(-1);
            var shape = t.shape.ToArray();
            shape[1] = n;
            return t.gather(1, idx.expand(shape));
        }
        return new(Take(What), Take(Where), Take(Presence), Take(PresenceProb), Take(Ids), Take(Temporal), Take(Prior));
    }
}
