/* A minimal circular doubly linked list in the style of the kernel's list_head, enough for
 * the example module. */
#ifndef KERNEL_STYLE_LIST_H_
#define KERNEL_STYLE_LIST_H_

#include <stddef.h>

struct list_head {
  struct list_head *next, *prev;
};

#define LIST_HEAD_INIT(name) \
  { &(name), &(name) }
#define LIST_HEAD(name) struct list_head name = LIST_HEAD_INIT(name)

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_for_each_entry(pos, head, member)                                           \
  for (pos = list_entry((head)->next, __typeof__(*pos), member); &pos->member != (head); \
       pos = list_entry(pos->member.next, __typeof__(*pos), member))

static inline int list_empty(const struct list_head *head) { return head->next == head; }

static inline void list_add_tail(struct list_head *item, struct list_head *head) {
  item->prev = head->prev;
  item->next = head;
  head->prev->next = item;
  head->prev = item;
}

static inline void list_del(struct list_head *item) {
  item->prev->next = item->next;
  item->next->prev = item->prev;
  item->next = item->prev = NULL;
}

#endif /* KERNEL_STYLE_LIST_H_ */
