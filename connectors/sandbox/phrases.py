"""What sandbox buyers write: every situation of the seller's playbooks, in six languages.

Placeholders: `{order}` (order id), `{item}` (item title, English texts only), `{days}` (days since
payment or shipment). Each situation names the order state the generator builds for it
(`SITUATION_STATES`), so a message always matches the facts the daemon will look up.
"""

from __future__ import annotations

LANGUAGES: tuple[str, ...] = ("en", "es", "pt", "ru", "fr", "de")

# situation -> language -> phrasings
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "nr_not_shipped": {
        "en": (
            "Hello, I paid for order {order} {days} days ago and it still has not been shipped. When will you send it?",
            "Why is my order not sent yet? I have been waiting {days} days.",
        ),
        "es": (
            "Hola, pagué el pedido {order} hace {days} días y todavía no lo han enviado. ¿Cuándo lo van a enviar?",
            "¿Por qué mi pedido aún no ha sido enviado? Llevo {days} días esperando.",
        ),
        "pt": (
            "Olá, paguei o pedido {order} há {days} dias e ainda não foi enviado. Quando vocês vão enviar?",
            "Por que meu pedido ainda não foi despachado? Estou esperando há {days} dias.",
        ),
        "ru": (
            "Здравствуйте, я оплатил заказ {order} {days} дней назад, но он до сих пор не отправлен. Когда вы его отправите?",
            "Почему мой заказ ещё не отправлен? Жду уже {days} дней.",
        ),
        "fr": (
            "Bonjour, j'ai payé la commande {order} il y a {days} jours et elle n'est toujours pas expédiée. Quand allez-vous l'envoyer ?",
            "Pourquoi ma commande n'est-elle pas encore partie ? J'attends depuis {days} jours.",
        ),
        "de": (
            "Hallo, ich habe die Bestellung {order} vor {days} Tagen bezahlt und sie wurde immer noch nicht verschickt. Wann senden Sie sie?",
            "Warum ist meine Bestellung noch nicht versendet? Ich warte schon seit {days} Tagen.",
        ),
    },
    "nr_no_tracking": {
        "en": (
            "The tracking number you gave me shows no information at all. Where is my parcel?",
            "I can't find any tracking information for my order {order}, nothing is updated.",
        ),
        "es": (
            "El número de seguimiento no muestra ninguna información. ¿Dónde está mi paquete?",
            "No encuentro ninguna información de rastreo de mi pedido {order}, no se actualiza nada.",
        ),
        "pt": (
            "O código de rastreio não mostra nenhuma informação. Onde está minha encomenda?",
            "Não consigo encontrar nenhuma informação de rastreamento do pedido {order}, nada é atualizado.",
        ),
        "ru": (
            "Трек-номер вообще не отслеживается, нет никакой информации. Где моя посылка?",
            "По заказу {order} нет никаких данных отслеживания, ничего не обновляется.",
        ),
        "fr": (
            "Le numéro de suivi n'affiche aucune information. Où est mon colis ?",
            "Je ne trouve aucune information de suivi pour ma commande {order}, rien n'est mis à jour.",
        ),
        "de": (
            "Die Sendungsnummer zeigt überhaupt keine Informationen. Wo ist mein Paket?",
            "Ich finde keine Sendungsverfolgung für meine Bestellung {order}, nichts wird aktualisiert.",
        ),
    },
    "nr_in_transit": {
        "en": (
            "Hello, where is my order? It's been {days} days and I still don't have it.",
            "Any news about my package? It was shipped {days} days ago.",
        ),
        "es": (
            "Hola, ¿dónde está mi pedido? Ya pasaron {days} días y todavía no lo tengo.",
            "¿Alguna novedad de mi paquete? Lo enviaron hace {days} días.",
        ),
        "pt": (
            "Olá, cadê meu pedido? Já se passaram {days} dias e ainda não chegou.",
            "Alguma novidade sobre minha encomenda? Foi enviada há {days} dias.",
        ),
        "ru": (
            "Здравствуйте, где мой заказ? Прошло уже {days} дней, а я его так и не получил.",
            "Есть новости о моей посылке? Её отправили {days} дней назад.",
        ),
        "fr": (
            "Bonjour, où est ma commande ? Cela fait {days} jours et je ne l'ai toujours pas.",
            "Des nouvelles de mon colis ? Il a été expédié il y a {days} jours.",
        ),
        "de": (
            "Hallo, wo ist meine Bestellung? Es sind schon {days} Tage vergangen und ich habe sie immer noch nicht.",
            "Gibt es Neuigkeiten zu meinem Paket? Es wurde vor {days} Tagen verschickt.",
        ),
    },
    "nr_overdue": {
        "en": (
            "It has been {days} days, the delivery time is over and my package never arrived.",
            "The promised delivery date has passed and I still have nothing. I want my order or my money.",
        ),
        "es": (
            "Han pasado {days} días, el plazo de entrega terminó y mi paquete nunca llegó.",
            "La fecha de entrega prometida ya pasó y sigo sin nada. Quiero mi pedido o mi dinero.",
        ),
        "pt": (
            "Já se passaram {days} dias, o prazo de entrega acabou e meu pacote nunca chegou.",
            "A data de entrega prometida já passou e continuo sem nada. Quero meu pedido ou meu dinheiro.",
        ),
        "ru": (
            "Прошло {days} дней, срок доставки истёк, а посылка так и не пришла.",
            "Обещанный срок доставки прошёл, а у меня до сих пор ничего нет. Верните заказ или деньги.",
        ),
        "fr": (
            "Cela fait {days} jours, le délai de livraison est dépassé et mon colis n'est jamais arrivé.",
            "La date de livraison promise est passée et je n'ai toujours rien. Je veux ma commande ou mon argent.",
        ),
        "de": (
            "Es sind {days} Tage vergangen, die Lieferzeit ist abgelaufen und mein Paket ist nie angekommen.",
            "Das versprochene Lieferdatum ist vorbei und ich habe immer noch nichts. Ich will meine Bestellung oder mein Geld.",
        ),
    },
    "nr_delivered": {
        "en": (
            "Tracking says delivered but I did not receive anything. There is no package at my door.",
            "Your site shows my order {order} as delivered, but it never came to me.",
        ),
        "es": (
            "El seguimiento dice entregado pero no he recibido nada. No hay ningún paquete en mi puerta.",
            "Aparece que mi pedido {order} fue entregado, pero nunca me llegó.",
        ),
        "pt": (
            "O rastreio diz entregue, mas não recebi nada. Não tem nenhum pacote na minha porta.",
            "Consta que meu pedido {order} foi entregue, mas nunca chegou para mim.",
        ),
        "ru": (
            "По отслеживанию посылка вручена, но я ничего не получал.",
            "Заказ {order} отмечен как доставленный, но я его не получил.",
        ),
        "fr": (
            "Le suivi indique livré mais je n'ai rien reçu. Il n'y a aucun colis devant ma porte.",
            "Ma commande {order} est marquée comme livrée, mais je ne l'ai jamais reçue.",
        ),
        "de": (
            "Laut Sendungsverfolgung zugestellt, aber ich habe nichts erhalten. Vor meiner Tür liegt kein Paket.",
            "Meine Bestellung {order} wird als zugestellt angezeigt, aber sie ist nie bei mir angekommen.",
        ),
    },
    "nr_customs": {
        "en": (
            "My parcel has been stuck in customs for two weeks. What should I do?",
            "The tracking says the package is held by customs and they need information.",
        ),
        "es": (
            "Mi paquete lleva dos semanas retenido en la aduana. ¿Qué debo hacer?",
            "El seguimiento dice que el paquete está retenido en aduana y piden información.",
        ),
        "pt": (
            "Minha encomenda está presa na alfândega há duas semanas. O que devo fazer?",
            "O rastreio diz que o pacote está retido na alfândega e pedem informações.",
        ),
        "ru": (
            "Моя посылка уже две недели задержана на таможне. Что мне делать?",
            "В отслеживании написано, что посылка задержана таможней и нужны документы.",
        ),
        "fr": (
            "Mon colis est bloqué à la douane depuis deux semaines. Que dois-je faire ?",
            "Le suivi indique que le colis est retenu en douane et qu'ils demandent des informations.",
        ),
        "de": (
            "Mein Paket hängt seit zwei Wochen beim Zoll fest. Was soll ich tun?",
            "Laut Sendungsverfolgung wird das Paket vom Zoll zurückgehalten und es werden Informationen benötigt.",
        ),
    },
    "nr_lost": {
        "en": (
            "The tracking says the parcel was lost. What now?",
            "The carrier told me my package is lost. Can you help me?",
        ),
        "es": (
            "El seguimiento dice que el paquete se perdió. ¿Y ahora qué?",
            "La empresa de transporte me dijo que mi paquete se perdió. ¿Me pueden ayudar?",
        ),
        "pt": (
            "O rastreio diz que a encomenda foi extraviada. E agora?",
            "A transportadora me disse que meu pacote foi perdido. Vocês podem me ajudar?",
        ),
        "ru": (
            "В отслеживании написано, что посылка утеряна. Что теперь?",
            "Служба доставки сообщила, что моя посылка потеряна. Можете помочь?",
        ),
        "fr": (
            "Le suivi indique que le colis a été perdu. Et maintenant ?",
            "Le transporteur m'a dit que mon colis est perdu. Pouvez-vous m'aider ?",
        ),
        "de": (
            "Laut Sendungsverfolgung ist das Paket verloren gegangen. Was nun?",
            "Der Zusteller hat mir gesagt, dass mein Paket verloren ist. Können Sie mir helfen?",
        ),
    },
    "nr_returned": {
        "en": (
            "Tracking shows my package is being returned to the sender. Why?",
            "My parcel was sent back to China, I never got it.",
        ),
        "es": (
            "El seguimiento muestra que mi paquete está siendo devuelto al remitente. ¿Por qué?",
            "Mi paquete fue devuelto a China, nunca lo recibí.",
        ),
        "pt": (
            "O rastreio mostra que meu pacote está sendo devolvido ao remetente. Por quê?",
            "Minha encomenda foi devolvida para a China, nunca recebi.",
        ),
        "ru": (
            "По отслеживанию посылка возвращается отправителю. Почему?",
            "Мою посылку отправили обратно в Китай, я её так и не получил.",
        ),
        "fr": (
            "Le suivi montre que mon colis est renvoyé à l'expéditeur. Pourquoi ?",
            "Mon colis a été renvoyé en Chine, je ne l'ai jamais reçu.",
        ),
        "de": (
            "Laut Sendungsverfolgung geht mein Paket an den Absender zurück. Warum?",
            "Mein Paket wurde nach China zurückgeschickt, ich habe es nie bekommen.",
        ),
    },
    "nr_pickup": {
        "en": (
            "The tracking says my parcel is waiting at a pickup point, but I don't know where.",
            "It says available for pickup. Where do I have to collect it?",
        ),
        "es": (
            "El seguimiento dice que mi paquete espera en un punto de recogida, pero no sé dónde.",
            "Dice disponible para recoger. ¿Dónde tengo que ir a buscarlo?",
        ),
        "pt": (
            "O rastreio diz que minha encomenda está aguardando retirada, mas não sei onde.",
            "Diz disponível para retirada. Onde eu tenho que buscar?",
        ),
        "ru": (
            "В отслеживании написано, что посылка ждёт в пункте выдачи, но я не знаю, в каком.",
            "Написано, что посылка готова к выдаче. Где мне её забрать?",
        ),
        "fr": (
            "Le suivi indique que mon colis attend dans un point relais, mais je ne sais pas lequel.",
            "Il est écrit disponible pour retrait. Où dois-je aller le chercher ?",
        ),
        "de": (
            "Laut Sendungsverfolgung liegt mein Paket in einer Abholstation, aber ich weiß nicht wo.",
            "Da steht abholbereit. Wo muss ich es abholen?",
        ),
    },
    "quality": {
        "en": (
            "The {item} broke after one day, the quality is very bad.",
            "I received the {item} but it is defective, it does not work at all.",
        ),
        "es": (
            "El producto se rompió después de un día, la calidad es muy mala.",
            "Recibí el artículo pero está defectuoso, no funciona.",
        ),
        "pt": (
            "O produto quebrou depois de um dia, a qualidade é péssima.",
            "Recebi o produto mas veio com defeito, não funciona.",
        ),
        "ru": (
            "Товар сломался через день, качество очень плохое.",
            "Получил товар, но он бракованный, совсем не работает.",
        ),
        "fr": (
            "Le produit s'est cassé après un jour, la qualité est très mauvaise.",
            "J'ai reçu l'article mais il est défectueux, il ne fonctionne pas du tout.",
        ),
        "de": (
            "Der Artikel ist nach einem Tag kaputtgegangen, die Qualität ist sehr schlecht.",
            "Ich habe den Artikel erhalten, aber er ist defekt und funktioniert gar nicht.",
        ),
    },
    "stain": {
        "en": (
            "The dress arrived with a stain on the front.",
            "There is a dirty spot on the item I received, it looks stained.",
        ),
        "es": (
            "El vestido llegó con una mancha en la parte delantera.",
            "El artículo que recibí tiene una mancha, está sucio.",
        ),
        "pt": (
            "O vestido chegou com uma mancha na frente.",
            "O produto que recebi tem uma mancha, veio sujo.",
        ),
        "ru": (
            "Платье пришло с пятном спереди.",
            "На полученном товаре грязное пятно.",
        ),
        "fr": (
            "La robe est arrivée avec une tache sur le devant.",
            "L'article que j'ai reçu a une tache, il est sale.",
        ),
        "de": (
            "Das Kleid kam mit einem Fleck vorne an.",
            "Auf dem Artikel, den ich bekommen habe, ist ein Fleck.",
        ),
    },
    "wrong_size": {
        "en": ("I ordered size M but received size XL.", "The size is wrong, I asked for S and you sent L."),
        "es": ("Pedí talla M pero recibí talla XL.", "La talla está mal, pedí S y me enviaron L."),
        "pt": ("Pedi tamanho M mas recebi tamanho GG.", "O tamanho está errado, pedi P e mandaram G."),
        "ru": ("Я заказывал размер M, а пришёл XL.", "Размер не тот, я заказывал S, а прислали L."),
        "fr": (
            "J'ai commandé la taille M mais j'ai reçu du XL.",
            "La taille est fausse, j'ai demandé du S et vous avez envoyé du L.",
        ),
        "de": (
            "Ich habe Größe M bestellt, aber Größe XL bekommen.",
            "Die Größe ist falsch, ich wollte S und Sie haben L geschickt.",
        ),
    },
    "wrong_colour": {
        "en": (
            "I ordered the blue one and you sent me red.",
            "Wrong colour! I chose black and received white.",
        ),
        "es": ("Pedí el azul y me enviaron el rojo.", "¡Color equivocado! Elegí negro y recibí blanco."),
        "pt": ("Pedi o azul e vocês mandaram o vermelho.", "Cor errada! Escolhi preto e recebi branco."),
        "ru": ("Я заказывала синий, а прислали красный.", "Не тот цвет! Я выбрала чёрный, а получила белый."),
        "fr": (
            "J'ai commandé le bleu et vous m'avez envoyé le rouge.",
            "Mauvaise couleur ! J'ai choisi noir et j'ai reçu blanc.",
        ),
        "de": (
            "Ich habe das blaue bestellt und Sie haben mir das rote geschickt.",
            "Falsche Farbe! Ich habe Schwarz gewählt und Weiß bekommen.",
        ),
    },
    "missing_accessory": {
        "en": (
            "The belt was missing from the package.",
            "I received the dress but the belt is not in the parcel.",
        ),
        "es": (
            "Faltaba el cinturón en el paquete.",
            "Recibí el vestido pero el cinturón no venía en el paquete.",
        ),
        "pt": ("O cinto não veio no pacote.", "Recebi o vestido mas faltou o cinto."),
        "ru": ("В посылке не было пояса.", "Платье пришло, а пояса в посылке нет."),
        "fr": (
            "La ceinture manquait dans le colis.",
            "J'ai reçu la robe mais la ceinture n'était pas dans le colis.",
        ),
        "de": (
            "Der Gürtel fehlte im Paket.",
            "Ich habe das Kleid bekommen, aber der Gürtel war nicht im Paket.",
        ),
    },
    "customs_tax": {
        "en": (
            "I had to pay 15 euros of customs tax to receive this parcel.",
            "The post office charged me import duties, nobody told me about it.",
        ),
        "es": (
            "Tuve que pagar 15 euros de impuestos de aduana para recibir este paquete.",
            "Correos me cobró impuestos de importación, nadie me avisó.",
        ),
        "pt": (
            "Tive que pagar 80 reais de taxa da alfândega para receber essa encomenda.",
            "Os Correios me cobraram imposto de importação, ninguém me avisou.",
        ),
        "ru": (
            "Мне пришлось заплатить таможенную пошлину, чтобы получить посылку.",
            "На почте с меня взяли таможенный сбор, меня об этом не предупредили.",
        ),
        "fr": (
            "J'ai dû payer 15 euros de taxes de douane pour recevoir ce colis.",
            "La poste m'a facturé des droits de douane, personne ne m'a prévenu.",
        ),
        "de": (
            "Ich musste 15 Euro Zollgebühren zahlen, um dieses Paket zu bekommen.",
            "Die Post hat mir Einfuhrabgaben berechnet, niemand hat mich darauf hingewiesen.",
        ),
    },
    "empty_parcel": {
        "en": (
            "The package arrived empty, there was nothing inside!",
            "I opened the parcel and it was an empty bag.",
        ),
        "es": ("¡El paquete llegó vacío, no había nada dentro!", "Abrí el paquete y era una bolsa vacía."),
        "pt": ("O pacote chegou vazio, não tinha nada dentro!", "Abri a encomenda e era um saco vazio."),
        "ru": ("Посылка пришла пустая, внутри ничего не было!", "Я открыл посылку, а там пустой пакет."),
        "fr": (
            "Le colis est arrivé vide, il n'y avait rien dedans !",
            "J'ai ouvert le colis et c'était un sachet vide.",
        ),
        "de": (
            "Das Paket kam leer an, es war nichts drin!",
            "Ich habe das Paket geöffnet und es war eine leere Tüte.",
        ),
    },
    "shipping_method": {
        "en": (
            "I paid for DHL but you sent it by regular post.",
            "Why did you use a different shipping method than the one I chose?",
        ),
        "es": (
            "Pagué por DHL pero lo enviaron por correo normal.",
            "¿Por qué usaron otro método de envío distinto al que elegí?",
        ),
        "pt": (
            "Paguei pelo DHL mas vocês enviaram pelo correio comum.",
            "Por que usaram outro método de envio diferente do que escolhi?",
        ),
        "ru": (
            "Я оплатил доставку DHL, а вы отправили обычной почтой.",
            "Почему вы отправили другим способом доставки, не тем, что я выбрал?",
        ),
        "fr": (
            "J'ai payé pour DHL mais vous l'avez envoyé par la poste normale.",
            "Pourquoi avez-vous utilisé un autre mode de livraison que celui que j'ai choisi ?",
        ),
        "de": (
            "Ich habe für DHL bezahlt, aber Sie haben es mit der normalen Post geschickt.",
            "Warum haben Sie eine andere Versandart gewählt als die, die ich ausgesucht habe?",
        ),
    },
    "cancel": {
        "en": (
            "Please cancel my order, I don't need it anymore.",
            "I want to cancel order {order}, I ordered by mistake.",
        ),
        "es": (
            "Por favor cancelen mi pedido, ya no lo necesito.",
            "Quiero cancelar el pedido {order}, lo compré por error.",
        ),
        "pt": (
            "Por favor cancelem meu pedido, não preciso mais.",
            "Quero cancelar o pedido {order}, comprei por engano.",
        ),
        "ru": (
            "Пожалуйста, отмените мой заказ, он мне больше не нужен.",
            "Хочу отменить заказ {order}, я заказал по ошибке.",
        ),
        "fr": (
            "Merci d'annuler ma commande, je n'en ai plus besoin.",
            "Je veux annuler la commande {order}, j'ai commandé par erreur.",
        ),
        "de": (
            "Bitte stornieren Sie meine Bestellung, ich brauche sie nicht mehr.",
            "Ich möchte die Bestellung {order} stornieren, ich habe aus Versehen bestellt.",
        ),
    },
    "change_address": {
        "en": (
            "I need to change my shipping address, I moved last week.",
            "Can you send the order to a different address? My street number is wrong.",
        ),
        "es": (
            "Necesito cambiar mi dirección de envío, me mudé la semana pasada.",
            "¿Pueden enviar el pedido a otra dirección? El número de mi calle está mal.",
        ),
        "pt": (
            "Preciso mudar meu endereço de entrega, me mudei semana passada.",
            "Vocês podem enviar o pedido para outro endereço? O número da minha casa está errado.",
        ),
        "ru": (
            "Мне нужно изменить адрес доставки, я переехал на прошлой неделе.",
            "Можно отправить заказ на другой адрес? Номер дома указан неправильно.",
        ),
        "fr": (
            "Je dois changer mon adresse de livraison, j'ai déménagé la semaine dernière.",
            "Pouvez-vous envoyer la commande à une autre adresse ? Mon numéro de rue est faux.",
        ),
        "de": (
            "Ich muss meine Lieferadresse ändern, ich bin letzte Woche umgezogen.",
            "Können Sie die Bestellung an eine andere Adresse schicken? Meine Hausnummer ist falsch.",
        ),
    },
    "payment": {
        "en": (
            "My payment failed twice, how can I pay for the order?",
            "I was charged but the order still says awaiting payment.",
        ),
        "es": (
            "Mi pago falló dos veces, ¿cómo puedo pagar el pedido?",
            "Me cobraron pero el pedido sigue diciendo pendiente de pago.",
        ),
        "pt": (
            "Meu pagamento falhou duas vezes, como posso pagar o pedido?",
            "Fui cobrado mas o pedido ainda diz aguardando pagamento.",
        ),
        "ru": (
            "Оплата дважды не прошла, как мне оплатить заказ?",
            "Деньги списали, а заказ всё ещё ожидает оплаты.",
        ),
        "fr": (
            "Mon paiement a échoué deux fois, comment puis-je payer la commande ?",
            "J'ai été débité mais la commande indique toujours en attente de paiement.",
        ),
        "de": (
            "Meine Zahlung ist zweimal fehlgeschlagen, wie kann ich die Bestellung bezahlen?",
            "Mir wurde Geld abgebucht, aber die Bestellung wartet immer noch auf Zahlung.",
        ),
    },
    "refund_request": {
        "en": ("I want a refund please.", "Please give me my money back for order {order}."),
        "es": ("Quiero un reembolso, por favor.", "Por favor, devuélvanme el dinero del pedido {order}."),
        "pt": ("Quero o reembolso, por favor.", "Por favor, devolvam meu dinheiro do pedido {order}."),
        "ru": ("Верните, пожалуйста, деньги.", "Прошу вернуть деньги за заказ {order}."),
        "fr": ("Je veux un remboursement, s'il vous plaît.", "Merci de me rembourser la commande {order}."),
        "de": (
            "Ich möchte bitte eine Rückerstattung.",
            "Bitte erstatten Sie mir das Geld für die Bestellung {order}.",
        ),
    },
    "thanks": {
        "en": (
            "Received it today, thank you very much, everything is perfect!",
            "Got my order, great quality. Thanks a lot!",
        ),
        "es": (
            "Lo recibí hoy, muchas gracias, ¡todo perfecto!",
            "Recibí mi pedido, muy buena calidad. ¡Muchas gracias!",
        ),
        "pt": (
            "Recebi hoje, muito obrigado, tudo perfeito!",
            "Chegou meu pedido, ótima qualidade. Muito obrigada!",
        ),
        "ru": ("Получил сегодня, большое спасибо, всё отлично!", "Заказ пришёл, качество отличное. Спасибо!"),
        "fr": (
            "Reçu aujourd'hui, merci beaucoup, tout est parfait !",
            "J'ai reçu ma commande, très bonne qualité. Merci beaucoup !",
        ),
        "de": (
            "Heute erhalten, vielen Dank, alles perfekt!",
            "Meine Bestellung ist angekommen, tolle Qualität. Vielen Dank!",
        ),
    },
    "other": {
        "en": ("Do you have this model in black too?", "Can I buy five pieces with a discount?"),
        "es": ("¿Tienen este modelo también en negro?", "¿Puedo comprar cinco unidades con descuento?"),
        "pt": ("Vocês têm esse modelo em preto também?", "Posso comprar cinco unidades com desconto?"),
        "ru": ("У вас есть эта модель в чёрном цвете?", "Можно купить пять штук со скидкой?"),
        "fr": ("Avez-vous ce modèle en noir aussi ?", "Puis-je acheter cinq pièces avec une remise ?"),
        "de": ("Haben Sie dieses Modell auch in Schwarz?", "Kann ich fünf Stück mit Rabatt kaufen?"),
    },
    "auto_reply": {
        "en": (
            "Thank you for your message. I am out of the office until Monday and will reply when I return.",
            "This is an automatic reply: I am on vacation and have limited access to my messages.",
        ),
        "es": (
            "Gracias por su mensaje. Estoy fuera de la oficina hasta el lunes y responderé a mi regreso.",
            "Respuesta automática: estoy de vacaciones y tengo acceso limitado a mis mensajes.",
        ),
        "pt": (
            "Obrigado pela mensagem. Estou fora do escritório até segunda-feira e responderei quando voltar.",
            "Resposta automática: estou de férias e com acesso limitado às mensagens.",
        ),
        "ru": (
            "Спасибо за сообщение. Я в отпуске до понедельника и отвечу, когда вернусь.",
            "Это автоматический ответ: я в отпуске, доступ к сообщениям ограничен.",
        ),
        "fr": (
            "Merci pour votre message. Je suis absent jusqu'à lundi et je répondrai à mon retour.",
            "Ceci est une réponse automatique : je suis en congés et j'ai un accès limité à mes messages.",
        ),
        "de": (
            "Vielen Dank für Ihre Nachricht. Ich bin bis Montag nicht im Büro und antworte nach meiner Rückkehr.",
            "Dies ist eine automatische Antwort: Ich bin im Urlaub und habe nur eingeschränkten Zugriff auf meine Nachrichten.",
        ),
    },
}

# AliExpress's own notices in a conversation (sender "aliexpress"): never to be answered.
SYSTEM_NOTICES: tuple[str, ...] = (
    "Your order {order} has been shipped. The buyer protection period has started.",
    "Reminder: the buyer has confirmed receipt of order {order}.",
)

# The order state each situation needs (see world.Recipe): shipped parcels name their fate.
SITUATION_STATES: dict[str, str] = {
    "nr_not_shipped": "paid",
    "nr_no_tracking": "no_tracking",
    "nr_in_transit": "in_transit",
    "nr_overdue": "overdue",
    "nr_delivered": "delivered",
    "nr_customs": "customs",
    "nr_lost": "lost",
    "nr_returned": "returned",
    "nr_pickup": "pickup",
    "quality": "delivered",
    "stain": "delivered",
    "wrong_size": "delivered",
    "wrong_colour": "delivered",
    "missing_accessory": "delivered",
    "customs_tax": "delivered",
    "empty_parcel": "delivered",
    "shipping_method": "in_transit",
    "cancel": "paid",
    "change_address": "paid",
    "payment": "unpaid",
    "refund_request": "in_transit",
    "thanks": "delivered",
    "other": "delivered",
    "auto_reply": "in_transit",
}

# How often each situation is drawn (weights, roughly a seller's real mix: mostly "where is it").
SITUATION_WEIGHTS: dict[str, float] = {
    "nr_not_shipped": 4,
    "nr_no_tracking": 4,
    "nr_in_transit": 14,
    "nr_overdue": 5,
    "nr_delivered": 5,
    "nr_customs": 4,
    "nr_lost": 3,
    "nr_returned": 3,
    "nr_pickup": 3,
    "quality": 5,
    "stain": 2,
    "wrong_size": 3,
    "wrong_colour": 2,
    "missing_accessory": 3,
    "customs_tax": 3,
    "empty_parcel": 2,
    "shipping_method": 2,
    "cancel": 3,
    "change_address": 2,
    "payment": 2,
    "refund_request": 3,
    "thanks": 4,
    "other": 3,
    "auto_reply": 2,
}

# Dispute openings: (English reason, Chinese reason, situations that fit it).
DISPUTE_REASONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Package not received",
        "未收到货",
        (
            "nr_in_transit",
            "nr_overdue",
            "nr_no_tracking",
            "nr_lost",
            "nr_delivered",
            "nr_customs",
            "nr_returned",
        ),
    ),
    ("Quality problem", "质量问题", ("quality", "stain")),
    ("Product not as described", "货不对版", ("wrong_size", "wrong_colour")),
    ("Missing parts or accessories", "少件/漏发配件", ("missing_accessory",)),
    ("Package was empty", "空包裹", ("empty_parcel",)),
    ("Shipping method different from the one chosen", "物流方式不一致", ("shipping_method",)),
)
